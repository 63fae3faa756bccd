use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::registry::{canonical, SECTIONS};
use crate::*;

const LONG_MAX: &str = "9223372036854775807";

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn from_file(file: &tempfile::NamedTempFile) -> LoadOptions {
    LoadOptions {
        file: Some(file.path().into()),
        ..Default::default()
    }
}

fn sets<S: AsRef<str>>(args: &[S]) -> LoadOptions {
    let sets = args.iter().map(|s| s.as_ref().to_string()).collect();
    LoadOptions {
        sets,
        ..Default::default()
    }
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(opts: &LoadOptions) -> Config {
    let (config, warnings) = Config::load(opts).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    config
}

fn load_err(opts: &LoadOptions) -> String {
    Config::load(opts).unwrap_err().to_string()
}

/// Non-blank lines of a case table, trimmed.
fn rows(table: &str) -> impl Iterator<Item = &str> {
    table.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// One case per line, given to `--set`: `key=value => stored value` or
/// `key=value !! fragment of the error`, which must also name the key and the source.
fn check(table: &str) {
    for case in rows(table) {
        let (input, want) = case.split_once(" => ").or(case.split_once(" !! ")).unwrap();
        let key = canonical(input.split('=').next().unwrap()).unwrap().name;
        let got = Config::load(&sets(&[input]))
            .map(|(config, _)| config.get(key).unwrap_or("").to_string())
            .map_err(|e| e.to_string());
        if case.contains(" => ") {
            assert_eq!(got.as_deref(), Ok(want), "{input}");
        } else {
            let err = got.expect_err(input);
            assert!(err.contains(want), "{input}: {err:?} lacks {want:?}");
            assert!(err.contains(&format!("for {key} (from --set)")), "{err}");
        }
    }
}

#[test]
fn validators_accept_normalize_and_reject() {
    check(
        r"
        node.id=-1                              !! expected a whole number >= 0
        num.partitions=0                        !! >= 1
        log.segment.bytes=1048575               !! a whole number of bytes >= 1048576
        log.segment.bytes=4GiB                  !! between 1048576 and 2147483647
        internal.log.segment.bytes=13           !! 0 (off) or >= 14
        internal.log.segment.bytes=14           => 14
        max.connections=2147483648              !! between 1 and 2147483647
        default.replication.factor=0            !! between 1 and 32767
        default.replication.factor=3            => 3
        log.retention.hours=-1                  => -1
        log.retention.hours=-2                  !! >= -1
        auto.create.topics.enable=TRUE          => true
        auto.create.topics.enable=yes           !! expected true or false
        log.cleaner.min.cleanable.ratio=0.25    => 0.25
        log.cleaner.min.cleanable.ratio=1.5     !! a number between 0 and 1
        log.cleaner.min.cleanable.ratio=NaN     !! a number between 0 and 1
        compression.type=ZSTD                   => zstd
        compression.type=brotli                 !! one of uncompressed, zstd, lz4, snappy, gzip, producer
        log.message.timestamp.type=logappendtime => LogAppendTime
        log.flush.policy=sometimes              !! one of always, interval, never
        log.format=xml                          !! one of text, json
        log.cleanup.policy= Compact , delete    => compact,delete
        log.cleanup.policy=delete,archive       !! a comma-separated list of delete, compact
        log.cleanup.policy=                     !! a comma-separated list
        log.dirs=/var/lib/klamm                 => /var/lib/klamm
        log.dirs=/a,/b                          !! a single directory path
        log.dirs=                               !! a single directory path
        listeners=plaintext://:9092             => PLAINTEXT://0.0.0.0:9092
        listeners=localhost:9092                !! NAME://host:port
        listeners=PLAINTEXT://a:1,PLAINTEXT://b:2 !! unique names
        listeners=PLAINTEXT://host:70000        !! NAME://host:port
        listeners=PLAINTEXT://::1:9092          !! NAME://host:port
        listeners=PLAINTEXT://ho/st:9092        !! NAME://host:port
        listeners=                              !! NAME://host:port
        advertised.listeners=PLAINTEXT://0.0.0.0:9092 !! not 0.0.0.0 or ::
        ",
    );
    assert_eq!(
        load_err(&sets(&["log.segment.bytes=abc"])),
        r#"invalid value "abc" for log.segment.bytes (from --set): expected a whole number of bytes >= 1048576"#
    );
}

#[test]
fn every_key_rejects_garbage_naming_the_key() {
    for def in BROKER_CONFIGS
        .iter()
        .filter(|d| !matches!(d.validator, Validator::Dir | Validator::FileOrEmpty))
    {
        let err = load_err(&sets(&[format!("{}=bogus!", def.name)]));
        assert!(
            err.starts_with(&format!("invalid value \"bogus!\" for {} ", def.name)),
            "{err}"
        );
    }
    for def in TOPIC_CONFIGS {
        let err = validate_topic_config(def.name, "bogus!")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(def.name) && err.contains("(from topic config)"),
            "{err}"
        );
    }
}

#[test]
fn human_units_on_byte_and_ms_keys() {
    check(
        r"
        log.segment.bytes=1GiB              => 1073741824
        log.segment.bytes=512MiB            => 536870912
        log.segment.bytes=1 MiB             => 1048576
        log.segment.bytes=2000kb            => 2000000
        log.segment.bytes=1048576B          => 1048576
        log.segment.bytes=1 KiB             !! >= 1048576
        log.retention.ms=7d                 => 604800000
        log.retention.ms=10s                => 10000
        log.retention.ms=250ms              => 250
        log.retention.ms=5m                 => 300000
        log.retention.ms=2h                 => 7200000
        log.retention.ms=1.5h               !! a whole number of milliseconds >= -1
        log.retention.ms=1GiB               !! milliseconds
        log.retention.ms=99999999999999999d !! milliseconds
        log.segment.bytes=10s               !! bytes
        num.partitions=1k                   !! a whole number >= 1
        log.retention.hours=1d              !! a whole number >= -1
        ",
    );
}

#[test]
fn each_source_overrides_the_one_below() {
    let file = file_with("num.partitions = 2\n");
    let expect = |opts: &LoadOptions, partitions: i32, origin: Origin| {
        let config = load(opts);
        assert_eq!(config.broker().num_partitions, partitions);
        assert_eq!(config.origin("num.partitions"), origin);
    };
    let mut opts = LoadOptions {
        strict: true,
        ..Default::default()
    };
    expect(&opts, 1, Origin::Default);
    opts.file = Some(file.path().into());
    expect(&opts, 2, Origin::File(file.path().into()));
    opts.env = pairs(&[("KLAMM_NUM_PARTITIONS", "3")]);
    expect(&opts, 3, Origin::Env("KLAMM_NUM_PARTITIONS".into()));
    opts.sets = vec!["num.partitions=4".into()];
    expect(&opts, 4, Origin::Set);
    opts.flags = pairs(&[("num.partitions", "5")]);
    expect(&opts, 5, Origin::Flag);
}

#[test]
fn toml_dotted_quoted_tables_and_arrays_are_the_same_keys() {
    let file = file_with(
        r#"
        log.retention.hours = 24
        "log.segment.bytes" = "1MiB"
        "max.connections" = 10
        max.connections.per.ip = 5
        listeners = ["PLAINTEXT://0.0.0.0:9092", "INTERNAL://127.0.0.1:9093"]
        log.cleanup.policy = ["compact", "delete"]
        [log.roll]
        hours = 2
        "#,
    );
    let config = load(&from_file(&file));
    assert_eq!(config.get("log.retention.hours"), Some("24"));
    assert_eq!(config.get("log.segment.bytes"), Some("1048576"));
    assert_eq!(config.get("log.roll.hours"), Some("2"));
    assert_eq!(config.get("log.cleanup.policy"), Some("compact,delete"));
    let broker = config.broker();
    assert_eq!(
        (broker.max_connections, broker.max_connections_per_ip),
        (10, 5)
    );
    assert_eq!(broker.listeners.len(), 2);
}

#[test]
fn file_errors_name_the_file_and_position() {
    let dup = file_with("log.retention.hours = 1\n\"log.retention.hours\" = 2\n");
    let err = load_err(&from_file(&dup));
    assert!(err.starts_with("log.retention.hours is set twice"), "{err}");

    let bad = file_with("num.partitions = 1\nlog.dirs = = 3\n");
    let path = bad.path().display();
    let err = load_err(&from_file(&bad));
    assert!(
        err.starts_with(&format!(
            "cannot parse config file {path} at line 2, column 12"
        )),
        "{err}"
    );

    let date = file_with("log.dirs = 1979-05-27\n");
    let err = load_err(&from_file(&date));
    assert!(
        err.contains(&format!(
            r#""1979-05-27" for log.dirs (from {})"#,
            date.path().display()
        )),
        "{err}"
    );

    let missing = LoadOptions {
        file: Some("/nonexistent/klamm.toml".into()),
        ..Default::default()
    };
    assert!(load_err(&missing).starts_with("cannot read config file /nonexistent/klamm.toml"));
}

#[test]
fn env_maps_klamm_names_and_ignores_the_rest() {
    assert_eq!(
        env_var_name("auto.create.topics.enable"),
        "KLAMM_AUTO_CREATE_TOPICS_ENABLE"
    );
    let env = |vars: &[(&str, &str)]| LoadOptions {
        env: pairs(vars),
        strict: true,
        ..Default::default()
    };
    let broker = load(&env(&[
        ("KLAMM_AUTO_CREATE_TOPICS_ENABLE", "false"),
        ("KLAMM_LOG_DIRS", "/env"),
        ("KLAMM_BROKERS", "localhost:9092"),
        ("PATH", "/bin"),
        ("klamm_num_partitions", "7"),
    ]))
    .broker();
    assert!(!broker.auto_create_topics_enable);
    assert_eq!(
        (broker.log_dirs, broker.num_partitions),
        (PathBuf::from("/env"), 1)
    );
    let err = load_err(&env(&[("KLAMM_NUM_PARTITIONS", "many")]));
    assert!(
        err.contains("num.partitions (from env KLAMM_NUM_PARTITIONS)"),
        "{err}"
    );
}

#[test]
fn log_dir_is_an_alias_that_log_dirs_beats_within_a_source() {
    let both = file_with("log.dirs = \"/dirs\"\nlog.dir = \"/dir\"\n");
    assert_eq!(load(&from_file(&both)).get("log.dirs"), Some("/dirs"));
    let env = pairs(&[("KLAMM_LOG_DIR", "/env")]);
    assert_eq!(
        load(&LoadOptions {
            env,
            ..from_file(&both)
        })
        .get("log.dirs"),
        Some("/env")
    );
    assert_eq!(load(&sets(&["log.dir=/set"])).get("log.dirs"), Some("/set"));
}

#[test]
fn unknown_keys_warn_unless_strict() {
    let file = file_with("foo.bar = 1\n");
    let mut opts = LoadOptions {
        sets: vec!["num.partitons=3".into()],
        ..from_file(&file)
    };
    let (_, warnings) = Config::load(&opts).unwrap();
    let foo = format!(
        "unknown config key foo.bar (from {}): ignored",
        file.path().display()
    );
    assert_eq!(
        warnings,
        [
            foo.as_str(),
            "unknown config key num.partitons (from --set): ignored"
        ]
    );
    opts.strict = true;
    assert!(load_err(&opts).starts_with("unknown config key foo.bar"));
    opts.file = None;
    assert_eq!(
        load_err(&opts),
        "unknown config key num.partitons (from --set)"
    );
    let flag = LoadOptions {
        flags: pairs(&[("no.such", "1")]),
        ..Default::default()
    };
    assert_eq!(
        load_err(&flag),
        "unknown config key no.such (from command-line flag)"
    );
    assert_eq!(
        load_err(&sets(&["novalue"])),
        "malformed --set \"novalue\": expected key=value"
    );
}

#[test]
fn listeners_and_derived_advertised_listeners() {
    // listeners | advertised.listeners | what clients are told
    let table = r"
        PLAINTEXT://0.0.0.0:9092 |  | PLAINTEXT://localhost:9092
        PLAINTEXT://[::]:9092    |  | PLAINTEXT://localhost:9092
        PLAINTEXT://[::1]:0      |  | PLAINTEXT://[::1]:0
        PLAINTEXT://10.0.0.5:9092,internal://:9093 | | PLAINTEXT://10.0.0.5:9092,INTERNAL://localhost:9093
        PLAINTEXT://0.0.0.0:9092,INTERNAL://0.0.0.0:9093 | INTERNAL://b1.example.com:19093 | PLAINTEXT://localhost:9092,INTERNAL://b1.example.com:19093
    ";
    for case in rows(table) {
        let [listeners, advertised, want] =
            [0, 1, 2].map(|i| case.split('|').nth(i).unwrap().trim());
        let config = load(&sets(&[
            format!("listeners={listeners}"),
            format!("advertised.listeners={advertised}"),
        ]));
        let broker = config.broker();
        let got: Vec<String> = broker
            .advertised_listeners
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(got.join(","), want, "{case}");
        assert_eq!(broker.listeners.len(), broker.advertised_listeners.len());
    }
    let v6 = Listener::parse_list("plaintext://[::1]:9092").unwrap();
    assert_eq!(
        v6,
        [Listener {
            name: "PLAINTEXT".into(),
            host: "::1".into(),
            port: 9092
        }]
    );
    let err = load_err(&sets(&["advertised.listeners=OTHER://h:1"]));
    assert!(
        err.contains("only listener names defined in listeners (PLAINTEXT)"),
        "{err}"
    );
}

#[test]
fn retention_most_specific_unit_wins() {
    // --set arguments => retention.ms, the synonym it comes from, its Kafka source code
    let table = "
        => 604800000 log.retention.hours 5
        log.retention.hours=24 => 86400000 log.retention.hours 4
        log.retention.hours=24 log.retention.minutes=30 => 1800000 log.retention.minutes 4
        log.retention.minutes=30 log.retention.ms=7d => 604800000 log.retention.ms 4
        log.retention.hours=-1 => -1 log.retention.hours 4
    ";
    for case in rows(table) {
        let (args, want) = case.split_once("=>").unwrap();
        let config = load(&sets(&args.split_whitespace().collect::<Vec<_>>()));
        let row = config
            .describe_topic(&BTreeMap::new())
            .into_iter()
            .find(|r| r.name == "retention.ms");
        let row = row.unwrap();
        let source = row.source.kafka_code().to_string();
        let got = [row.value.as_deref().unwrap(), &row.synonyms[0].0, &source].join(" ");
        assert_eq!(got, want.trim(), "{case}");
        let retention_ms = config.topic_settings(&BTreeMap::new()).retention_ms;
        assert_eq!(retention_ms.to_string(), row.value.unwrap());
    }
    // Specificity beats source precedence, as in Kafka: ms from the file beats hours from --set.
    let file = file_with("log.retention.ms = 1000\n");
    let config = load(&LoadOptions {
        file: Some(file.path().into()),
        ..sets(&["log.retention.hours=1"])
    });
    assert_eq!(config.topic_settings(&BTreeMap::new()).retention_ms, 1000);
    let config = load(&sets(&["log.roll.hours=1"]));
    assert_eq!(
        config.topic_settings(&BTreeMap::new()).segment_ms,
        3_600_000
    );
}

#[test]
fn segment_bytes_has_a_1_mib_floor_that_only_the_internal_test_keys_pass() {
    let small: BTreeMap<String, String> = pairs(&[("segment.bytes", "4096")]).into_iter().collect();
    // A stored value below the floor (from an older version) is ignored, not trusted.
    let config = load(&sets::<&str>(&[]));
    assert_eq!(config.topic_settings(&small).segment_bytes, 1 << 30);
    assert!(validate_topic_config("segment.bytes", "4096").is_err());
    let internal: BTreeMap<String, String> = pairs(&[("internal.segment.bytes", "4096")])
        .into_iter()
        .collect();
    assert_eq!(config.topic_settings(&internal).segment_bytes, 4096);
    let config = load(&sets(&["internal.log.segment.bytes=65536"]));
    assert_eq!(config.topic_settings(&BTreeMap::new()).segment_bytes, 65536);
    assert_eq!(config.topic_settings(&internal).segment_bytes, 4096);
}

#[test]
fn topic_overrides_settings_and_describe_rows() {
    let config = load(&sets(&["log.retention.hours=24", "compression.type=lz4"]));
    let overrides: BTreeMap<String, String> = pairs(&[
        ("retention.ms", "5000"),
        ("cleanup.policy", "compact"),
        ("segment.bytes", "soon"), // invalid: ignored, not trusted
    ])
    .into_iter()
    .collect();
    let topic = config.topic_settings(&overrides);
    assert_eq!(
        (topic.retention_ms, topic.segment_bytes),
        (5000, 1_073_741_824)
    );
    assert!(topic.cleanup_policy_compact && !topic.cleanup_policy_delete);
    assert_eq!(topic.compression_type, "lz4");

    let rows = config.describe_topic(&overrides);
    assert_eq!(rows.len(), TOPIC_CONFIGS.len());
    let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap().clone();
    let syn = |name: &str, value: &str, source| (name.to_string(), value.to_string(), source);
    let retention = row("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("5000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopicConfig);
    assert_eq!(
        retention.synonyms,
        [
            syn("retention.ms", "5000", ConfigSource::DynamicTopicConfig),
            syn(
                "log.retention.hours",
                "24",
                ConfigSource::StaticBrokerConfig
            ),
            syn("log.retention.hours", "168", ConfigSource::DefaultConfig),
        ]
    );
    let compression = row("compression.type");
    assert_eq!(compression.value.as_deref(), Some("lz4"));
    assert_eq!(compression.source, ConfigSource::StaticBrokerConfig);
    let flush = [syn("flush.ms", LONG_MAX, ConfigSource::DefaultConfig)];
    assert_eq!(row("flush.ms").synonyms, flush);
    let segment = [syn("log.roll.hours", "168", ConfigSource::DefaultConfig)];
    assert_eq!(
        (row("segment.ms").synonyms, row("segment.ms").value),
        (segment.into(), Some("604800000".into()))
    );

    assert_eq!(
        validate_topic_config("retention.ms", "1h").unwrap(),
        "3600000"
    );
    assert_eq!(
        validate_topic_config("cleanup.policy", "delete, compact").unwrap(),
        "delete,compact"
    );
    assert_eq!(
        validate_topic_config("foo", "1").unwrap_err().to_string(),
        "unknown topic config foo"
    );
}

#[test]
fn describe_broker_rows() {
    let rows = load(&sets(&["log.retention.hours=24"])).describe_broker();
    assert_eq!(rows.len(), BROKER_CONFIGS.len());
    let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap().clone();
    let hours = row("log.retention.hours");
    assert_eq!(
        (hours.value.as_deref(), hours.source.kafka_code()),
        (Some("24"), 4)
    );
    assert!(!hours.read_only && !hours.sensitive);
    let default = (
        "log.retention.hours".into(),
        "168".into(),
        ConfigSource::DefaultConfig,
    );
    assert_eq!(hours.synonyms[1], default);
    let node = row("node.id");
    assert_eq!(
        (
            node.value.as_deref(),
            node.source.kafka_code(),
            node.read_only
        ),
        (Some("1"), 5, true)
    );
    let advertised = row("advertised.listeners");
    assert_eq!((advertised.value, advertised.synonyms.len()), (None, 0));
}

#[test]
fn defaults_give_the_documented_settings() {
    let broker = Config::defaults().broker();
    assert_eq!(broker.node_id, 1);
    assert_eq!(broker.listeners[0].to_string(), "PLAINTEXT://0.0.0.0:9092");
    assert_eq!(
        broker.advertised_listeners[0].to_string(),
        "PLAINTEXT://localhost:9092"
    );
    assert_eq!(broker.log_dirs, PathBuf::from("./data"));
    assert_eq!(
        (broker.flush_policy, broker.flush_interval_ms),
        (FlushPolicy::Always, 1000)
    );
    assert_eq!(
        (broker.log_format, broker.shutdown_timeout_ms),
        (LogFormat::Text, 5000)
    );
    assert_eq!(broker.queued_max_requests_per_connection, 128);
    assert_eq!(broker.socket_request_max_bytes, 104_857_600);
    let topic = Config::defaults().topic_settings(&BTreeMap::new());
    assert_eq!(
        (topic.retention_ms, topic.segment_ms),
        (604_800_000, 604_800_000)
    );
    assert_eq!(topic.message_timestamp_type, TimestampType::CreateTime);
    assert!(topic.cleanup_policy_delete && !topic.cleanup_policy_compact);
    let flush = load(&sets(&[
        "log.flush.policy=interval",
        "log.flush.interval.ms=250ms",
    ]))
    .broker();
    assert_eq!(
        (flush.flush_policy, flush.flush_interval_ms),
        (FlushPolicy::Interval, 250)
    );
    let summary = Config::defaults().summary();
    assert!(summary.contains(&"log.dirs = ./data (default)".to_string()));
}

#[test]
fn registry_is_consistent() {
    let mut env_names = std::collections::BTreeSet::new();
    for def in BROKER_CONFIGS {
        assert!(env_names.insert(env_var_name(def.name)), "{}", def.name);
        if !def.default.is_empty() {
            let normalized = crate::value::normalize(def.name, def.ty, def.validator, def.default);
            assert_eq!(normalized.as_deref(), Ok(def.default), "{}", def.name);
        }
        if let Some(topic) = def.topic_key {
            assert!(
                topic_def(topic)
                    .unwrap()
                    .broker_synonyms
                    .contains(&def.name),
                "{}",
                def.name
            );
        }
    }
    let described = Config::defaults().describe_topic(&BTreeMap::new());
    for (topic, row) in TOPIC_CONFIGS.iter().zip(&described) {
        assert_eq!(
            validate_topic_config(topic.name, topic.default).unwrap(),
            topic.default
        );
        // The topic default is what the broker defaults add up to.
        assert_eq!(row.value.as_deref(), Some(topic.default), "{}", topic.name);
        for name in topic.broker_synonyms {
            let def = broker_def(name).unwrap();
            assert_eq!(def.topic_key, Some(topic.name), "{name}");
            if !name.ends_with(".hours") && !name.ends_with(".minutes") {
                assert_eq!(
                    (def.ty, def.validator),
                    (topic.ty, topic.validator),
                    "{name}"
                );
            }
        }
    }
    assert!(SECTIONS
        .iter()
        .all(|(_, first)| broker_def(first).is_some()));
    let types = [ConfigType::Boolean, ConfigType::List, ConfigType::Password];
    assert_eq!(types.map(|t| t.kafka_code()), [1, 7, 9]);
}

/// `UPDATE_KLAMM_TOML=1 cargo test -p klamm-config` rewrites the file after a registry change.
#[test]
fn checked_in_klamm_toml_is_print_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/klamm.toml");
    if std::env::var_os("UPDATE_KLAMM_TOML").is_some() {
        std::fs::write(path, print_default()).unwrap();
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == print_default(),
        "config/klamm.toml is stale: rerun with UPDATE_KLAMM_TOML=1"
    );
}

#[test]
fn print_default_loads_back_to_the_defaults() {
    let file = file_with(&print_default());
    let config = load(&LoadOptions {
        strict: true,
        ..from_file(&file)
    });
    let defaults = Config::defaults();
    for def in BROKER_CONFIGS {
        assert_eq!(config.get(def.name), defaults.get(def.name), "{}", def.name);
    }
    assert_eq!(config.broker(), defaults.broker());
    assert_eq!(
        config.topic_settings(&BTreeMap::new()),
        defaults.topic_settings(&BTreeMap::new())
    );
    assert!(print_default().contains("\n\"max.connections\" = 4096\n"));
    assert!(print_default().contains("\n# log.retention.ms =\n"));
}

#[test]
fn dynamic_layers_beat_startup_values_and_describe_their_source() {
    use crate::DynamicScope::{Broker, ClusterDefault};
    let base = load(&sets(&["log.retention.hours=24", "message.max.bytes=2000"]));
    let cluster = BTreeMap::from([("message.max.bytes".to_string(), "3000".to_string())]);
    let config = base.with_dynamic(ClusterDefault, &cluster).unwrap();
    assert_eq!(config.get("message.max.bytes"), Some("3000"));
    assert_eq!(config.origin("message.max.bytes"), Origin::DynamicDefault);
    let mine = BTreeMap::from([
        ("message.max.bytes".to_string(), "4KiB".to_string()),
        ("log.retention.ms".to_string(), "60000".to_string()),
    ]);
    let config = config.with_dynamic(Broker, &mine).unwrap();
    // Normalized on the way in, like every other source.
    assert_eq!(config.get("message.max.bytes"), Some("4096"));
    assert_eq!(config.dynamic(Broker)["message.max.bytes"], "4096");
    let row = config
        .describe_broker()
        .into_iter()
        .find(|r| r.name == "message.max.bytes")
        .unwrap();
    let sources: Vec<i8> = row.synonyms.iter().map(|s| s.2.kafka_code()).collect();
    assert_eq!((row.source.kafka_code(), sources), (2, vec![2, 3, 4, 5]));
    // Topic keys follow their broker synonyms' dynamic values.
    let topic = config.topic_settings(&BTreeMap::new());
    assert_eq!(
        (topic.max_message_bytes, topic.retention_ms),
        (4096, 60_000)
    );
    let retention = config
        .describe_topic(&BTreeMap::new())
        .into_iter()
        .find(|r| r.name == "retention.ms")
        .unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.source.kafka_code()),
        (Some("60000"), 2)
    );
    // Describing resource "" shows only the cluster-wide layer.
    let defaults = config.describe_cluster_defaults();
    assert_eq!(defaults.len(), 1);
    assert_eq!(
        (defaults[0].name.as_str(), defaults[0].value.as_deref()),
        ("message.max.bytes", Some("3000"))
    );
    // A dynamic value of a less specific synonym still beats a static value of a more
    // specific one (Kafka: a dynamic key hides its synonyms in the layers below).
    let static_ms = load(&sets(&["log.retention.ms=1000"]));
    let hours = BTreeMap::from([("log.retention.hours".to_string(), "2".to_string())]);
    let layered = static_ms.with_dynamic(ClusterDefault, &hours).unwrap();
    assert_eq!(
        layered.topic_settings(&BTreeMap::new()).retention_ms,
        7_200_000
    );
    let retention = layered
        .describe_topic(&BTreeMap::new())
        .into_iter()
        .find(|r| r.name == "retention.ms")
        .unwrap();
    let order: Vec<(&str, i8)> = retention
        .synonyms
        .iter()
        .map(|(n, _, s)| (n.as_str(), s.kafka_code()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("log.retention.hours", 3),
            ("log.retention.ms", 4),
            ("log.retention.hours", 5)
        ]
    );
    // Replacing a layer with nothing returns to the layer below.
    let config = config.with_dynamic(Broker, &BTreeMap::new()).unwrap();
    assert_eq!(config.get("message.max.bytes"), Some("3000"));
    assert_eq!(
        config.topic_settings(&BTreeMap::new()).retention_ms,
        86_400_000
    );
}

#[test]
fn dynamic_changes_refuse_static_unknown_and_invalid_keys() {
    use crate::DynamicScope::Broker;
    let base = Config::defaults();
    let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    let err = |k: &str, v: &str| {
        base.with_dynamic(Broker, &one(k, v))
            .unwrap_err()
            .to_string()
    };
    assert!(err("log.dirs", "/tmp").contains("log.dirs cannot be changed while the broker runs"));
    assert!(err("no.such.key", "1").contains("unknown config key no.such.key"));
    assert!(err("message.max.bytes", "lots").contains("message.max.bytes"));
    assert!(err("max.connections", "-1").contains("max.connections"));
    // The test-only floor bypass is the operator's alone.
    assert!(
        err("internal.log.segment.bytes", "14").contains("cannot be changed while the broker runs")
    );
    // A persisted value this version refuses is skipped, not fatal.
    let mut restored = Config::defaults();
    let stored = BTreeMap::from([
        ("log.dirs".to_string(), "/x".to_string()),
        ("max.connections".to_string(), "10".to_string()),
    ]);
    let warnings = restored.restore_dynamic(Broker, &stored);
    assert_eq!(warnings.len(), 1);
    assert_eq!(restored.get("max.connections"), Some("10"));
    assert_eq!(restored.broker().max_connections, 10);
}

/// Port 0 in `listeners` (and in an explicit `advertised.listeners`) is replaced by the
/// port bound, so clients are never told to connect to port 0.
#[test]
fn bound_ports_replace_port_zero_in_listeners_and_advertised() {
    let (config, _) = Config::load(&LoadOptions {
        sets: vec![
            "listeners=PLAINTEXT://127.0.0.1:0,OTHER://127.0.0.1:9999".into(),
            "advertised.listeners=OTHER://example.com:0".into(),
        ],
        ..LoadOptions::default()
    })
    .unwrap();
    let bound = config.with_bound_ports(&[("PLAINTEXT".into(), 40_001), ("OTHER".into(), 9_999)]);
    let s = bound.broker();
    let ports: Vec<u16> = s.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, [40_001, 9_999]);
    let advertised: Vec<String> = s
        .advertised_listeners
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(
        advertised,
        ["PLAINTEXT://127.0.0.1:40001", "OTHER://example.com:9999"]
    );
}

#[test]
fn the_decompression_limit_reaches_every_topic_and_follows_a_dynamic_change() {
    use crate::DynamicScope::ClusterDefault;
    let base = load(&sets(&["message.max.decompressed.bytes=4194304"]));
    let none = BTreeMap::new();
    assert_eq!(base.topic_settings(&none).max_decompressed_bytes, 4 << 20);
    let changed = BTreeMap::from([(
        "message.max.decompressed.bytes".to_string(),
        "2097152".to_string(),
    )]);
    let config = base.with_dynamic(ClusterDefault, &changed).unwrap();
    // A different TopicSettings is what makes the broker re-apply it to live topics.
    assert_eq!(config.topic_settings(&none).max_decompressed_bytes, 2 << 20);
    assert_ne!(config.topic_settings(&none), base.topic_settings(&none));
}

#[test]
fn coordinator_and_cleaner_settings_are_typed_from_the_registry() {
    let defaults = load(&LoadOptions::default());
    let (g, t, c) = (defaults.groups(), defaults.txns(), defaults.cleaner());
    assert_eq!(
        (g.min_session_timeout_ms, g.offsets_topic_num_partitions),
        (6000, 50)
    );
    assert_eq!(g.offsets_retention_ms, 10080 * 60_000);
    assert_eq!(
        (t.max_timeout_ms, t.state_log_num_partitions),
        (900_000, 50)
    );
    assert!(c.enable && c.io_max_bytes_per_second == f64::MAX);
    let set = load(&sets(&[
        "group.max.size=7",
        "offsets.retention.minutes=2",
        "transaction.max.timeout.ms=5000",
        "log.cleaner.backoff.ms=100",
    ]));
    assert_eq!(set.groups().max_size, 7);
    assert_eq!(set.groups().offsets_retention_ms, 120_000);
    assert_eq!(set.txns().max_timeout_ms, 5000);
    assert_eq!(set.cleaner().backoff_ms, 100);
}

#[test]
fn the_quorum_keys_agree_with_each_other_and_node_id() {
    // `;`-separated --set values => the voters as stored, or !! key and error fragment.
    let table = r"
        process.roles=broker,controller => |
        process.roles=controller,broker ; controller.quorum.voters= => |
        process.roles=broker !! process.roles | a node with one role needs the quorum's voters
        process.roles=controller !! process.roles | a node with one role needs the quorum's voters
        process.roles=observer !! process.roles | broker, controller
        listeners=PLAINTEXT://:9092,CONTROLLER://:9093 ; controller.quorum.voters=1@127.0.0.1:9093 => 1@127.0.0.1:9093
        listeners=PLAINTEXT://:9092,CONTROLLER://:9093 ; controller.quorum.voters= 2@b:9093 , 1@[::1]:9093 => 2@b:9093,1@[::1]:9093
        listeners=PLAINTEXT://:9092,CONTROLLER://:9093 ; controller.quorum.voters=2@b:9093,3@c:9093 !! controller.quorum.voters | to include node.id 1
        process.roles=broker ; controller.quorum.voters=1@a:9093,2@b:9093 !! controller.quorum.voters | not to include node.id 1
        process.roles=broker ; controller.quorum.voters=2@b:9093,3@c:9093 => 2@b:9093,3@c:9093
        controller.quorum.voters=1@a:9093 !! controller.listener.names | a listener name defined in listeners (PLAINTEXT)
        listeners=PLAINTEXT://:9092,QUORUM://:9093 ; controller.listener.names=quorum ; controller.quorum.voters=1@a:9093 => 1@a:9093
        controller.quorum.voters=1@a:9093,1@b:9093 !! controller.quorum.voters | unique ids
        controller.quorum.voters=x@a:9093 !! controller.quorum.voters | id@host:port
        controller.quorum.voters=1@a !! controller.quorum.voters | id@host:port
        controller.quorum.voters=1@0.0.0.0:9093 !! controller.quorum.voters | id@host:port
        controller.quorum.voters=-1@a:9093 !! controller.quorum.voters | id@host:port
    ";
    for case in rows(table) {
        let (input, want) = case.split_once(" => ").or(case.split_once(" !! ")).unwrap();
        let args: Vec<String> = input.split(';').map(|s| s.trim().to_string()).collect();
        let got = Config::load(&sets(&args)).map_err(|e| e.to_string());
        if let Some(voters) = case
            .split_once(" => ")
            .map(|(_, w)| w.trim_end_matches(" |").trim_end_matches('|').trim())
        {
            let (config, _) = got.unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                config.get("controller.quorum.voters").unwrap_or(""),
                voters,
                "{input}"
            );
            let quorum = config.quorum().unwrap();
            assert_eq!(
                quorum.voters.len(),
                voters.split(',').filter(|v| !v.is_empty()).count()
            );
        } else {
            let (key, fragment) = want.split_once(" | ").unwrap();
            let err = got.expect_err(input);
            assert!(
                err.contains(&format!("for {key} ")),
                "{input}: {err:?} does not name {key}"
            );
            assert!(
                err.contains(fragment),
                "{input}: {err:?} lacks {fragment:?}"
            );
        }
    }
    let voters = Voter::parse_list("3@[::1]:19093").unwrap();
    assert_eq!(
        voters,
        [Voter {
            id: 3,
            host: "::1".into(),
            port: 19093
        }]
    );
}
