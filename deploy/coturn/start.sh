#!/bin/sh
# Starts coturn in the compose file's coturn service: fills the ${NAME} placeholders of
# turnserver.conf from the environment (the same names `cargo xtask cluster up` fills), then
# runs turnserver with the public address. `start.sh --print` prints the filled file instead.
set -eu

template=${TURN_TEMPLATE:-/etc/coturn/turnserver.conf.template}
conf=${TURN_CONF:-/tmp/turnserver.conf}

script=
for name in TURN_PORT TURN_TLS_PORT TURN_MIN_PORT TURN_MAX_PORT TURN_REALM TURN_SECRET TURN_CERT TURN_PKEY; do
    eval "value=\${$name:?$name is not set}"
    # Escape what sed would read as special in a replacement.
    value=$(printf '%s' "$value" | sed 's/[\\|&]/\\&/g')
    script="${script}s|\${$name}|$value|g;"
done

umask 077
sed "$script" "$template" > "$conf"

if [ "${1:-}" = "--print" ]; then
    cat "$conf"
    exit 0
fi
exec turnserver -c "$conf" --external-ip="${TURN_EXTERNAL_IP:?set TURN_EXTERNAL_IP to the public address}" "$@"
