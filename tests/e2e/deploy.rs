//! The files of `deploy/`, checked by the tools that read them where those run here (nginx,
//! docker-compose, kubernetes-validate, systemd-analyze, the server's own configuration
//! loader), and read as data for what no tool checks: that the pieces refer to each other
//! (selectors and labels, Services, Secrets and ConfigMaps, ports), and that the copies of a
//! configuration file in the Kubernetes manifests equal the file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_yaml::Value;
use triad_server::config::{Config, ConfigOverrides};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn deploy(path: &str) -> PathBuf {
    root().join("deploy").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

/// A program the check runs, or a failure saying how to install it.
fn program(name: &str) -> Command {
    let path = xtask::programs::find(name).unwrap_or_else(|e| panic!("{e:#}"));
    Command::new(path)
}

fn run(mut command: Command) -> String {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

/// The `${NAME}` placeholders of a template, outside comment lines.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split("${").skip(1))
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn the_node_settings_load_as_a_server_configuration() {
    let path = deploy("triad/triad.toml");
    let config =
        Config::load(Some(&path), ConfigOverrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.log_format, triad_server::config::LogFormat::Json);
    assert!(
        config.drain_delay.as_millis() > 0,
        "a drain delay for load balancers"
    );
    assert_eq!(
        config.store, "embedded",
        "the store comes from TRIAD_STORE per deployment"
    );
}

#[test]
fn nginx_accepts_the_site_configuration() {
    let state = tempfile::tempdir().unwrap();
    let nodes: [SocketAddr; 2] = [
        "127.0.0.1:8081".parse().unwrap(),
        "127.0.0.1:8082".parse().unwrap(),
    ];
    // The same filling and `nginx -t` that `cargo xtask cluster up` runs before nginx.
    xtask::cluster::check_nginx(&root(), state.path(), nodes).unwrap_or_else(|e| panic!("{e:#}"));
    let site = std::fs::read_to_string(state.path().join("nginx/triad.conf")).unwrap();
    for needed in [
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_read_timeout 1h;",
        "proxy_next_upstream error timeout",
    ] {
        assert!(site.contains(needed), "the site lacks {needed:?}");
    }
    assert!(
        !site.contains("ip_hash") && !site.contains("sticky"),
        "no stickiness"
    );
    // Plain HTTP from elsewhere is sent to HTTPS, and HTTPS answers carry HSTS.
    assert!(
        site.contains("return 308 https://$host$request_uri;"),
        "{site}"
    );
    assert!(site.contains("Strict-Transport-Security"), "{site}");
}

#[test]
fn the_compose_file_is_valid_and_fills_every_template() {
    // docker-compose 1.29 validates the file against the compose schema without a daemon.
    let empty_env = tempfile::NamedTempFile::new().unwrap();
    let mut command = program("docker-compose");
    command
        .current_dir(deploy(""))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .arg("--env-file")
        .arg(empty_env.path())
        .args(["-f", "compose.yaml", "config"]);
    let example = read("env.example");
    let example_vars: BTreeMap<&str, &str> = example
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    for (name, value) in &example_vars {
        command.env(name, if value.is_empty() { "x" } else { value });
    }
    let resolved: Value = serde_yaml::from_str(&run(command)).unwrap();
    let services = resolved["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["coturn", "nginx", "redis", "triad-a", "triad-b"])
    );

    // Every variable the file needs is in env.example.
    let compose = read("compose.yaml");
    for part in compose.split("${").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        assert!(
            example_vars.contains_key(name.as_str()),
            "{name} is missing from env.example"
        );
    }

    // The files it mounts from this folder exist.
    let file: Value = serde_yaml::from_str(&compose).unwrap();
    for (name, service) in file["services"].as_mapping().unwrap() {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            let is_file = Path::new(source).extension().is_some();
            if let Some(relative) = source.strip_prefix("./").filter(|_| is_file) {
                assert!(
                    deploy(relative).is_file(),
                    "{name:?} mounts {source}, which is missing"
                );
            }
        }
    }

    // The environment of nginx and coturn fills exactly their templates' placeholders.
    let environment = |service: &str| -> BTreeSet<String> {
        file["services"][service]["environment"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        environment("nginx"),
        placeholders(&read("nginx/triad.conf"))
    );
    let mut coturn = placeholders(&read("coturn/turnserver.conf"));
    coturn.insert("TURN_EXTERNAL_IP".into());
    assert_eq!(environment("coturn"), coturn);
    assert_eq!(
        file["services"]["coturn"]["entrypoint"][1],
        "/etc/coturn/start.sh"
    );
}

#[test]
fn coturn_is_filled_alike_by_its_start_script_and_the_cluster() {
    let conf = tempfile::tempdir().unwrap();
    let mut command = Command::new("sh");
    command
        .arg(deploy("coturn/start.sh"))
        .arg("--print")
        .env("TURN_TEMPLATE", deploy("coturn/turnserver.conf"))
        .env("TURN_CONF", conf.path().join("turnserver.conf"));
    // A secret with characters that sed would take as special.
    let secret = r"s3cr|t&\x";
    for (name, value) in xtask::cluster::coturn_production_values("turn.example.org", secret) {
        command.env(name, value);
    }
    let by_script = run(command);
    let by_cluster =
        xtask::cluster::coturn_production_config(&root(), "turn.example.org", secret).unwrap();
    assert_eq!(by_script, by_cluster);

    let lines: BTreeSet<&str> = by_cluster.lines().collect();
    for needed in [
        "tls-listening-port=443",
        "use-auth-secret",
        "static-auth-secret=s3cr|t&\\x",
        "no-multicast-peers",
        "no-cli",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=172.16.0.0-172.31.255.255",
        "denied-peer-ip=192.168.0.0-192.168.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255",
        "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ] {
        assert!(lines.contains(needed), "turnserver.conf lacks {needed}");
    }
    assert!(
        !by_cluster.contains("\nallow-loopback-peers"),
        "loopback relays only in the local cluster"
    );
}

#[test]
fn the_image_runs_the_server_as_an_unprivileged_user_with_a_health_check() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<(String, String)> = dockerfile
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (word, rest) = l.split_once(' ').unwrap_or((l, ""));
            (word.to_uppercase(), rest.trim().to_string())
        })
        .collect();
    let of = |word: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    let stages = of("FROM");
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert!(
        stages[0].starts_with("rust:") && stages[0].ends_with(" AS build"),
        "{stages:?}"
    );
    assert!(
        stages[1].starts_with("debian:") && stages[1].contains("slim"),
        "{stages:?}"
    );
    let user = of("USER");
    assert!(
        matches!(user.last(), Some(u) if !u.starts_with("root") && !u.starts_with('0')),
        "{user:?}"
    );
    let health = of("HEALTHCHECK").join(" ");
    assert!(health.contains("http://127.0.0.1:8080/healthz"), "{health}");
    assert_eq!(of("ENTRYPOINT"), ["[\"/usr/local/bin/triad-server\"]"]);
    assert_eq!(of("CMD"), ["[\"serve\"]"]);
    assert_eq!(of("EXPOSE"), ["8080"]);
    assert!(
        of("ENV")
            .iter()
            .any(|e| e.contains("TRIAD_LISTEN=0.0.0.0:8080"))
    );
    for copy in of("COPY").iter().filter(|c| !c.starts_with("--from")) {
        let source = copy.split_whitespace().next().unwrap();
        assert!(
            source == "." || root().join(source).exists(),
            "COPY {source}: missing"
        );
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target"),
        "the build context leaves out target/"
    );
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    // `systemd-analyze verify` checks that ExecStart exists: point it at the built program.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("systemd/triad.service").replace(
        "/usr/local/bin/triad-server",
        env!("CARGO_BIN_EXE_triad-node"),
    );
    let path = dir.path().join("triad.service");
    std::fs::write(&path, unit).unwrap();
    let mut verify = program("systemd-analyze");
    verify.arg("verify").arg(&path);
    run(verify);
    let mut security = program("systemd-analyze");
    security.args(["security", "--offline=yes"]).arg(&path);
    let report = run(security);
    let level: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for triad.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        level <= 2.0,
        "exposure {level} (systemd calls up to 2.0 OK)"
    );
    let unit = read("systemd/triad.service");
    assert!(unit.contains("\nKillSignal=SIGTERM\n"));
    assert!(unit.contains("\nLoadCredential=jwt-secret:/etc/triad/jwt-secret\n"));
}

/// Every document of every manifest in `deploy/k8s`, by kind and name.
fn manifests() -> BTreeMap<(String, String), Value> {
    let mut all = BTreeMap::new();
    for file in kubernetes_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap();
            let kind = value["kind"].as_str().unwrap().to_string();
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            assert!(
                all.insert((kind.clone(), name.clone()), value).is_none(),
                "{kind} {name} twice"
            );
        }
    }
    all
}

/// The manifests kustomization.yaml lists, checked to be every YAML file of the folder.
fn kubernetes_files() -> Vec<PathBuf> {
    let kustomization: Value = serde_yaml::from_str(&read("k8s/kustomization.yaml")).unwrap();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(deploy("k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");
    listed.iter().map(|n| deploy("k8s").join(n)).collect()
}

#[test]
fn kubernetes_manifests_pass_the_schemas() {
    // The default (newest) Kubernetes version of kubernetes-validate, and an older one still
    // in service.
    for version in [None, Some("1.29.0")] {
        let mut command = program("kubernetes-validate");
        command.args(["--strict", "--quiet"]);
        if let Some(version) = version {
            command.args(["-k", version]);
        }
        command.args(kubernetes_files());
        run(command);
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_mapping().unwrap();
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn kubernetes_manifests_refer_to_each_other() {
    let all = manifests();
    let get = |kind: &str, name: &str| -> &Value {
        all.get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let deployment = get("Deployment", "triad");
    let spec = &deployment["spec"];
    let pod = &spec["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(labels_match(&spec["selector"]["matchLabels"], labels));
    let container = &pod["spec"]["containers"][0];
    let ports: BTreeSet<&str> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();

    // Probes: readiness on /readyz, liveness on /healthz, both on the metrics port (its
    // own listener, out of the public port's connection caps).
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            ports.contains(get["port"].as_str().unwrap()),
            "{probe} port"
        );
        assert_eq!(get["port"], "metrics", "{probe} port");
    }

    // The stop sequence fits the grace period: preStop, the drain delay, the shutdown timeout.
    let pre_stop = &container["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(pre_stop[0], "sleep");
    let pre_stop: u64 = pre_stop[1].as_str().unwrap().parse().unwrap();
    let config_map = get("ConfigMap", "triad-config");
    let toml = config_map["data"]["triad.toml"].as_str().unwrap();
    assert_eq!(
        toml,
        read("triad/triad.toml"),
        "the ConfigMap holds deploy/triad/triad.toml"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    let config = Config::load(Some(file.path()), ConfigOverrides::default()).unwrap();
    let drain = u64::try_from(config.drain_delay.as_millis().div_ceil(1000)).unwrap();
    let needed = pre_stop + drain + config.shutdown_timeout.as_secs();
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        grace > needed,
        "terminationGracePeriodSeconds {grace} must exceed {needed}"
    );

    // Secrets and ConfigMaps it uses exist, with the keys it reads.
    for env in container["env"].as_sequence().unwrap() {
        let reference = &env["valueFrom"]["secretKeyRef"];
        if reference.is_mapping() {
            let secret = get("Secret", reference["name"].as_str().unwrap());
            assert!(
                secret["stringData"].get(&reference["key"]).is_some(),
                "{env:?}"
            );
        }
    }
    let env = |name: &str| -> Option<&str> {
        container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
    };
    assert_eq!(env("TRIAD_CONFIG"), Some("/etc/triad/triad.toml"));
    assert_eq!(env("TRIAD_STORE"), Some("redis://redis:6379"));
    for volume in pod["spec"]["volumes"].as_sequence().unwrap() {
        if let Some(name) = volume["configMap"]["name"].as_str() {
            get("ConfigMap", name);
        }
    }

    // The Service selects the pods and targets a declared port; the Ingress uses the
    // Service by a port it has; the disruption budget covers the pods and leaves one.
    let service = get("Service", "triad");
    assert!(labels_match(&service["spec"]["selector"], labels));
    let service_ports: BTreeSet<&str> = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(ports.contains(p["targetPort"].as_str().unwrap()));
            p["name"].as_str().unwrap()
        })
        .collect();
    let ingress = get("Ingress", "triad");
    for timeout in ["proxy-read-timeout", "proxy-send-timeout"] {
        let key = format!("nginx.ingress.kubernetes.io/{timeout}");
        let annotation = &ingress["metadata"]["annotations"][key.as_str()];
        let seconds: u64 = annotation.as_str().unwrap().parse().unwrap();
        assert!(seconds >= 3600, "{key}: websockets stay open");
    }
    for rule in ingress["spec"]["rules"].as_sequence().unwrap() {
        for path in rule["http"]["paths"].as_sequence().unwrap() {
            let backend = &path["backend"]["service"];
            assert_eq!(backend["name"], "triad");
            assert!(service_ports.contains(backend["port"]["name"].as_str().unwrap()));
        }
    }
    let budget = get("PodDisruptionBudget", "triad");
    assert!(labels_match(
        &budget["spec"]["selector"]["matchLabels"],
        labels
    ));
    assert!(budget["spec"]["minAvailable"].as_u64().unwrap() < spec["replicas"].as_u64().unwrap());

    // Redis: the Service the nodes use selects the StatefulSet, whose config is the file.
    let redis = get("StatefulSet", "redis");
    let redis_labels = &redis["spec"]["template"]["metadata"]["labels"];
    assert!(labels_match(
        &redis["spec"]["selector"]["matchLabels"],
        redis_labels
    ));
    assert!(labels_match(
        &get("Service", "redis")["spec"]["selector"],
        redis_labels
    ));
    assert!(
        !labels_match(&service["spec"]["selector"], redis_labels),
        "the triad Service leaves Redis out"
    );
    let redis_conf = get("ConfigMap", "redis-config")["data"]["redis.conf"]
        .as_str()
        .unwrap();
    assert_eq!(
        redis_conf,
        read("redis/redis.conf"),
        "the ConfigMap holds deploy/redis/redis.conf"
    );
}
