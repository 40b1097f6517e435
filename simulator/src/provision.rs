//! Registering the simulated chargers, and the drivers (customers with their idTags) who charge
//! at them, with an echarging central system over its REST API (`POST /api/v1/chargers`,
//! `POST /api/v1/customers`, operator token), idempotently: 201 created and 409 already there
//! both count as done. Specific to echarging's API; the OCPP side needs none of it.

use futures_util::StreamExt as _;
use serde_json::json;

/// Requests in flight at once: enough to hide latency, few enough not to look like an attack.
const IN_FLIGHT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("creating {id} answered HTTP {status}: {body}")]
    Status {
        id: String,
        status: u16,
        body: String,
    },
    #[error("request to the API failed: {0}")]
    Request(#[from] reqwest::Error),
}

/// Makes sure a customer holding each idTag in `id_tags` exists. Returns, per idTag, the
/// customer's id when this call created it (`None` when it already existed: the API does not
/// look customers up by idTag, and a 409 carries no id).
pub async fn ensure_customers(
    api_url: &str,
    token: &str,
    id_tags: &[String],
) -> Result<Vec<Option<i64>>, ProvisionError> {
    let client = client()?;
    let endpoint = format!("{}/api/v1/customers", api_url.trim_end_matches('/'));
    let client = &client;
    let endpoint = endpoint.as_str();
    let mut answers = futures_util::stream::iter(id_tags.iter().enumerate())
        .map(|(index, tag)| async move {
            let body = json!({"name": format!("Simulated driver {tag}"), "idTags": [tag]});
            let response = client
                .post(endpoint)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            match response.status().as_u16() {
                201 => {
                    let created: serde_json::Value = response.json().await?;
                    Ok((index, created["id"].as_i64()))
                }
                409 => Ok((index, None)),
                status => Err(refused(tag, status, response).await),
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut ids = vec![None; id_tags.len()];
    while let Some(answer) = answers.next().await {
        let (index, id) = answer?;
        ids[index] = id;
    }
    Ok(ids)
}

fn client() -> Result<reqwest::Client, ProvisionError> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

async fn refused(id: &str, status: u16, response: reqwest::Response) -> ProvisionError {
    let body: String = response.text().await.unwrap_or_default();
    ProvisionError::Status {
        id: id.to_owned(),
        status,
        body: body.chars().take(300).collect(),
    }
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
    let client = client()?;
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
                status => Err(refused(id, status, response).await),
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
