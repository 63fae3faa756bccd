//! `klamm cluster info | api-versions | config get|set|delete`.

use super::{json_status, print_json, status_with_message, Ctx, Table};
use anyhow::Result;
use clap::Subcommand;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use klamm_client::{api_name, client_versions, str_bytes, Client, Target};
use serde_json::json;

/// DescribeConfigs/IncrementalAlterConfigs resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Info,
    /// The API versions the broker serves, next to the ones this client speaks.
    ApiVersions,
    /// Broker configuration (DescribeConfigs / IncrementalAlterConfigs).
    #[command(subcommand)]
    Config(ClusterConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum ClusterConfigCommand {
    /// Print broker configs (all, or the keys given).
    Get {
        /// Config keys [default: all].
        keys: Vec<String>,
        /// Broker id to ask [default: the bootstrap broker's id].
        #[arg(long)]
        broker: Option<i32>,
    },
    /// Set dynamic broker configs: cluster-wide, or for one broker with --broker. They are
    /// persisted and take effect at once; static keys are refused (INVALID_CONFIG).
    Set {
        /// Configs to set.
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
        /// Set them for this broker only [default: the cluster-wide default].
        #[arg(long)]
        broker: Option<i32>,
    },
    /// Remove dynamic broker configs, so the broker's startup value applies again.
    Delete {
        /// Config keys whose dynamic values to remove.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Remove this broker's own values [default: the cluster-wide default's].
        #[arg(long)]
        broker: Option<i32>,
    },
}

pub async fn run(ctx: Ctx, cmd: ClusterCommand) -> Result<bool> {
    ctx.check_plain_format()?;
    let mut client = ctx.client().await?;
    match cmd {
        ClusterCommand::Info => info(&ctx, &mut client).await,
        ClusterCommand::ApiVersions => api_versions(&ctx, &client),
        ClusterCommand::Config(ClusterConfigCommand::Get { keys, broker }) => {
            let broker = broker_id(&mut client, broker).await?;
            describe_configs(&ctx, &mut client, RESOURCE_BROKER, &broker, &keys, false).await
        }
        // Kafka's broker resource "" is the cluster-wide default layer.
        ClusterCommand::Config(ClusterConfigCommand::Set { pairs, broker }) => {
            let broker = broker.map(|id| id.to_string()).unwrap_or_default();
            let ops = set_ops(&pairs)?;
            alter_configs(&ctx, &mut client, RESOURCE_BROKER, &broker, ops, false).await
        }
        ClusterCommand::Config(ClusterConfigCommand::Delete { keys, broker }) => {
            let broker = broker.map(|id| id.to_string()).unwrap_or_default();
            let ops = keys.into_iter().map(|k| (k, None)).collect();
            alter_configs(&ctx, &mut client, RESOURCE_BROKER, &broker, ops, false).await
        }
    }
}

async fn broker_id(client: &mut Client, given: Option<i32>) -> Result<String> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    let metadata = client.metadata(Some(&[])).await?;
    Ok(metadata
        .brokers
        .first()
        .map(|b| b.node_id.0)
        .unwrap_or(metadata.controller_id.0)
        .to_string())
}

async fn info(ctx: &Ctx, client: &mut Client) -> Result<bool> {
    let metadata = client.metadata(None).await?;
    let describe = if client.versions().contains_key(&60) {
        client
            .call(Target::Any, |_| DescribeClusterRequest::default())
            .await
            .ok()
    } else {
        None
    };
    let cluster_id = metadata
        .cluster_id
        .as_ref()
        .map(|c| c.to_string())
        .or_else(|| describe.as_ref().map(|d| d.cluster_id.to_string()))
        .unwrap_or_default();
    let topics = metadata.topics.len();
    let internal = metadata.topics.iter().filter(|t| t.is_internal).count();
    if ctx.json() {
        let brokers: Vec<_> = metadata
            .brokers
            .iter()
            .map(|b| {
                json!({"id": b.node_id.0, "host": b.host.as_str(), "port": b.port,
                       "rack": b.rack.as_ref().map(|r| r.to_string())})
            })
            .collect();
        print_json(&json!({
            "cluster_id": cluster_id,
            "controller_id": metadata.controller_id.0,
            "bootstrap": client.bootstrap_addr(),
            "brokers": brokers,
            "topics": topics,
            "internal_topics": internal,
        }));
        return Ok(true);
    }
    outln!("CLUSTER-ID   {cluster_id}");
    outln!("CONTROLLER   {}", metadata.controller_id.0);
    outln!("TOPICS       {topics} ({internal} internal)");
    outln!();
    let mut table = Table::new(&["ID", "HOST", "PORT", "RACK"]);
    for b in &metadata.brokers {
        let id = if b.node_id == metadata.controller_id {
            format!("{}*", b.node_id.0)
        } else {
            b.node_id.0.to_string()
        };
        table.row(vec![
            id,
            b.host.to_string(),
            b.port.to_string(),
            b.rack.as_ref().map(|r| r.to_string()).unwrap_or("-".into()),
        ]);
    }
    table.print();
    Ok(true)
}

fn api_versions(ctx: &Ctx, client: &Client) -> Result<bool> {
    let versions = client.versions();
    if ctx.json() {
        let rows: Vec<_> = versions
            .iter()
            .map(|(key, (min, max))| {
                json!({"api_key": key, "name": api_name(*key), "min_version": min, "max_version": max})
            })
            .collect();
        print_json(&json!({ "broker": client.bootstrap_addr(), "apis": rows }));
        return Ok(true);
    }
    let mut table = Table::new(&["API", "KEY", "MIN", "MAX", "CLIENT-USES"]);
    for (key, (min, max)) in versions {
        let uses = match client_versions(*key) {
            None => "-".to_string(),
            Some((cmin, cmax)) if (*max).min(cmax) >= (*min).max(cmin) => {
                format!("v{}", (*max).min(cmax))
            }
            Some(_) => "none".to_string(),
        };
        table.row(vec![
            api_name(*key).to_string(),
            key.to_string(),
            min.to_string(),
            max.to_string(),
            uses,
        ]);
    }
    table.print();
    Ok(true)
}

/// Prints configs of one resource; with `non_default_only`, only overrides.
pub async fn describe_configs(
    ctx: &Ctx,
    client: &mut Client,
    resource_type: i8,
    name: &str,
    keys: &[String],
    non_default_only: bool,
) -> Result<bool> {
    let response = client
        .call(Target::Any, |_| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(name))
                    .with_configuration_keys(if keys.is_empty() {
                        None
                    } else {
                        Some(keys.iter().map(|k| str_bytes(k)).collect())
                    }),
            ])
        })
        .await?;
    let Some(result) = response.results.into_iter().next() else {
        anyhow::bail!("DescribeConfigs: empty response");
    };
    let ok = result.error_code == 0;
    let message = result.error_message.as_ref().map(|m| m.to_string());
    let configs: Vec<_> = result
        .configs
        .iter()
        .filter(|c| !non_default_only || !matches!(c.config_source, 5 | -1))
        .collect();
    if ctx.json() {
        let rows: Vec<_> = configs
            .iter()
            .map(|c| {
                json!({"name": c.name.as_str(), "value": c.value.as_ref().map(|v| v.to_string()),
                       "source": config_source(c.config_source), "read_only": c.read_only,
                       "sensitive": c.is_sensitive})
            })
            .collect();
        let mut obj = json_status(result.error_code, message.as_deref());
        obj.insert("resource".into(), name.into());
        obj.insert("configs".into(), rows.into());
        print_json(&obj.into());
        return Ok(ok);
    }
    if !ok {
        eprintln!(
            "{name}: {}",
            status_with_message(ctx, result.error_code, message.as_deref())
        );
        return Ok(false);
    }
    let mut table = Table::new(&["KEY", "VALUE", "SOURCE"]);
    for c in configs {
        let value = if c.is_sensitive {
            "(sensitive)".to_string()
        } else {
            c.value
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or("-".into())
        };
        table.row(vec![
            c.name.to_string(),
            value,
            config_source(c.config_source).into(),
        ]);
    }
    table.print();
    Ok(true)
}

/// Kafka's names for DescribeConfigs `config_source`.
pub fn config_source(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        8 => "DYNAMIC_CLIENT_METRICS_CONFIG",
        _ => "UNKNOWN",
    }
}

/// `key=value` pairs as set operations.
pub fn set_ops(pairs: &[String]) -> Result<Vec<(String, Option<String>)>> {
    pairs
        .iter()
        .map(|p| super::parse_key_value(p).map(|(k, v)| (k, Some(v))))
        .collect()
}

/// IncrementalAlterConfigs on one resource: `Some(value)` sets, `None` deletes.
pub async fn alter_configs(
    ctx: &Ctx,
    client: &mut Client,
    resource_type: i8,
    name: &str,
    ops: Vec<(String, Option<String>)>,
    validate_only: bool,
) -> Result<bool> {
    let configs: Vec<AlterableConfig> = ops
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(str_bytes(k))
                .with_config_operation(if v.is_some() { 0 } else { 1 })
                .with_value(v.as_deref().map(str_bytes))
        })
        .collect();
    let response = client
        .call(Target::Any, |_| {
            IncrementalAlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(name))
                    .with_configs(configs)])
        })
        .await?;
    let mut ok = true;
    let mut table = Table::new(&["RESOURCE", "KEY", "ACTION", "STATUS"]);
    let mut rows = Vec::new();
    for r in &response.responses {
        ok &= r.error_code == 0;
        let message = r.error_message.as_ref().map(|m| m.to_string());
        for (k, v) in &ops {
            let action = match v {
                Some(v) => format!("set {v}"),
                None => "delete".into(),
            };
            table.row(vec![
                // Broker resource "" is the cluster-wide default layer.
                match r.resource_name.as_str() {
                    "" => "(cluster)".to_string(),
                    name => name.to_string(),
                },
                k.clone(),
                action.clone(),
                status_with_message(ctx, r.error_code, message.as_deref()),
            ]);
            let mut row = json_status(r.error_code, message.as_deref());
            row.insert("resource".into(), r.resource_name.to_string().into());
            row.insert("key".into(), k.clone().into());
            row.insert("value".into(), v.clone().into());
            row.insert("validate_only".into(), validate_only.into());
            rows.push(serde_json::Value::Object(row));
        }
    }
    if ctx.json() {
        print_json(&rows.into());
    } else {
        table.print();
    }
    Ok(ok)
}
