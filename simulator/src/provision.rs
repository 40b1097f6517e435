//! Registering the simulated chargers with an echarging central system over its REST API
//! (`POST /api/v1/chargers` with the operator token), idempotently: 201 created and 409 already
//! there both count as done. Specific to echarging's API; the OCPP side needs none of it.

use futures_util::StreamExt as _;
use serde_json::json;

/// Requests in flight at once: enough to hide latency, few enough not to look like an attack.
const IN_FLIGHT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("creating charger {id} answered HTTP {status}: {body}")]
    Status {
        id: String,
        status: u16,
        body: String,
    },
    #[error("request to the API failed: {0}")]
    Request(#[from] reqwest::Error),
}

/// Makes sure every id in `ids` exists as a charger with `connectors` connectors (and the
/// password, when given). Returns how many were newly created.
pub async fn ensure_chargers(
    api_url: &str,
    token: &str,
    ids: &[String],
    connectors: u32,
    password: Option<&str>,
) -> Result<usize, ProvisionError> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let endpoint = format!("{}/api/v1/chargers", api_url.trim_end_matches('/'));
    let client = &client;
    let endpoint = endpoint.as_str();
    let mut answers = futures_util::stream::iter(ids)
        .map(|id| async move {
            let mut body = json!({"id": id, "connectors": connectors});
            if let Some(password) = password {
                body["password"] = json!(password);
            }
            let response = client
                .post(endpoint)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            match response.status().as_u16() {
                201 => Ok(true),
                409 => Ok(false),
                status => {
                    let body: String = response.text().await.unwrap_or_default();
                    Err(ProvisionError::Status {
                        id: id.clone(),
                        status,
                        body: body.chars().take(300).collect(),
                    })
                }
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut created = 0;
    while let Some(answer) = answers.next().await {
        if answer? {
            created += 1;
        }
    }
    Ok(created)
}
