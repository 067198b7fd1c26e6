//! Documents ([`Collection`]) in Redis: one hash per collection, `triad:docs:<collection>`,
//! key to document. A conditional write is one script, so it is atomic whichever node
//! runs it.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::store::{Collection, Expect};

/// The hash holding a collection's documents.
pub(super) fn hash(collection: Collection) -> String {
    format!("triad:docs:{}", collection.as_str())
}

/// `KEYS`: the hash. `ARGV`: the key; what is expected (`any`, `absent` or `value`); the
/// expected value (or empty); `put` or `delete`; the new value (or empty). Returns 1 when
/// written, 0 when the document did not hold what was expected.
const WRITE_DOC: &str = r#"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == 'absent' and current ~= false then return 0 end
if ARGV[2] == 'value' and current ~= ARGV[3] then return 0 end
if ARGV[4] == 'put' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"#;

static WRITE_DOC_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE_DOC));

/// Runs the conditional write.
pub(super) async fn write(
    mut conn: ConnectionManager,
    collection: Collection,
    key: &str,
    expect: &Expect,
    value: Option<&str>,
) -> redis::RedisResult<bool> {
    let (mode, expected) = match expect {
        Expect::Anything => ("any", ""),
        Expect::Absent => ("absent", ""),
        Expect::Value(value) => ("value", value.as_str()),
    };
    let (action, new) = match value {
        Some(value) => ("put", value),
        None => ("delete", ""),
    };
    let written: i64 = WRITE_DOC_SCRIPT
        .key(hash(collection))
        .arg(key)
        .arg(mode)
        .arg(expected)
        .arg(action)
        .arg(new)
        .invoke_async(&mut conn)
        .await?;
    Ok(written == 1)
}
