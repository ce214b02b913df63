//! Calls on an open session, each within the session's budget, and the failure each ends
//! in; [`Session::run`] closes the connection whatever the calls did.

use super::conn::ConnArgs;
use super::session::{ConnSpec, Session, open_session};
use crate::output::{Failure, Report};
use clawgate_client::RpcError;
use clawgate_client::failure;
use clawgate_protocol::scopes;
use serde_json::Value;
use tokio::time::Instant;

/// The outcome of one call within the session's budget.
pub enum CallOutcome {
    Ok(Value, u64),
    Failed(RpcError, u64),
    TimedOut,
}

impl Session {
    pub async fn call(
        &self,
        method: &str,
        params: Option<Value>,
        expect_final: bool,
    ) -> CallOutcome {
        let started = Instant::now();
        let fut = async {
            if expect_final {
                self.client.request_expect_final(method, params).await
            } else {
                self.client.request(method, params).await
            }
        };
        match tokio::time::timeout_at(self.deadline, fut).await {
            Err(_) => CallOutcome::TimedOut,
            Ok(Ok(v)) => CallOutcome::Ok(v, started.elapsed().as_millis() as u64),
            Ok(Err(e)) => CallOutcome::Failed(e, started.elapsed().as_millis() as u64),
        }
    }

    /// A call whose failure ends the command.
    pub async fn call_required(
        &self,
        method: &str,
        params: Option<Value>,
        expect_final: bool,
    ) -> Result<(Value, u64), Failure> {
        match self.call(method, params, expect_final).await {
            CallOutcome::Ok(v, ms) => Ok((v, ms)),
            CallOutcome::Failed(e, _) => Err(failure::rpc_failure(
                method,
                &e,
                &self.hello.scopes(),
                &self.target,
            )),
            CallOutcome::TimedOut => {
                Err(failure::call_timeout(method, self.timeout_ms, &self.target))
            }
        }
    }

    /// [`Session::call_required`] without the latency.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, Failure> {
        self.call_required(method, Some(params), false)
            .await
            .map(|(v, _)| v)
    }

    /// A call whose gateway error is handed back (`Err(Ok(e))`) for the caller to interpret;
    /// a call that ran out of time is a failure already.
    pub async fn try_request(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Value, Result<RpcError, Failure>> {
        match self.call(method, Some(params), false).await {
            CallOutcome::Ok(v, _) => Ok(v),
            CallOutcome::Failed(e, _) => Err(Ok(e)),
            CallOutcome::TimedOut => Err(Err(failure::call_timeout(
                method,
                self.timeout_ms,
                &self.target,
            ))),
        }
    }

    /// A call whose gateway error `explain` may turn into a failure of its own; any other
    /// error is [`Session::rpc_failure`].
    pub async fn request_or(
        &self,
        method: &str,
        params: Value,
        explain: impl FnOnce(&RpcError) -> Option<Failure>,
    ) -> Result<Value, Failure> {
        match self.try_request(method, params).await {
            Ok(v) => Ok(v),
            Err(Err(f)) => Err(f),
            Err(Ok(e)) => Err(explain(&e).unwrap_or_else(|| self.rpc_failure(method, &e))),
        }
    }

    /// A gateway error as a failure, with this connection's scopes.
    pub fn rpc_failure(&self, method: &str, e: &RpcError) -> Failure {
        failure::rpc_failure(method, e, &self.hello.scopes(), &self.target)
    }

    /// Runs `work`; when it fails, closes the connection, else hands it back with the result.
    pub async fn try_run<T>(
        self,
        work: impl AsyncFnOnce(&Session) -> Result<T, Failure>,
    ) -> Result<(Session, T), Failure> {
        match work(&self).await {
            Ok(v) => Ok((self, v)),
            Err(f) => {
                self.client.close().await;
                Err(f)
            }
        }
    }

    /// This connection if it holds every scope in `needed`, else (closing it) a new one
    /// asking them.
    pub async fn widen(self, conn: &ConnArgs, needed: &[String]) -> Result<Session, Failure> {
        let granted = self.hello.scopes();
        if needed.iter().all(|n| scopes::satisfies(&granted, n)) {
            return Ok(self);
        }
        self.client.close().await;
        connect(conn, &needed.iter().map(String::as_str).collect::<Vec<_>>()).await
    }

    /// Runs `work`, then closes the connection whatever `work` returned.
    pub async fn run<T>(self, work: impl AsyncFnOnce(&Session) -> T) -> T {
        let out = work(&self).await;
        self.client.close().await;
        out
    }
}

/// Calls `method` once on a connection asking only the scope the method needs; a failure is
/// reported (as JSON with `--json`) and becomes the exit code.
pub async fn call_once(
    conn: &ConnArgs,
    method: &str,
    params: Value,
) -> Result<Value, std::process::ExitCode> {
    let scopes = clawgate_client::session::least_scopes(method);
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let session = connect(conn, &scopes)
        .await
        .map_err(|f| f.report(conn.json))?;
    session
        .run(async |s| s.request(method, params).await)
        .await
        .map_err(|f| f.report(conn.json))
}

/// Opens a `cli` connection asking `scopes`.
pub async fn connect(conn: &ConnArgs, scopes: &[&str]) -> Result<Session, Failure> {
    let spec = ConnSpec::cli(scopes.iter().map(|s| (*s).to_owned()).collect());
    open_session(conn, spec).await.map_err(|b| b.0)
}
