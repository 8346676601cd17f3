//! Lambda entry point: configuration, logging and the key source once per cold start; then the
//! authorizer (API Gateway invokes it with a payload-2.0 authorizer event, simple responses).

use std::sync::Arc;

use jwt_authorizer::{Authorizer, AuthorizerConfig, OidcKeySource};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = AuthorizerConfig::from_env()?;
    let source = Arc::new(OidcKeySource::new(&config.issuer)?);
    let authorizer = Arc::new(Authorizer::build(config, source));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let authorizer = authorizer.clone();
        async move { authorizer.authorize(&event.payload).await.map_err(lambda_runtime::Error::from) }
    }))
    .await
}
