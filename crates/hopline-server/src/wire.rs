//! What the coordinator and its agents say to each other (JSON bodies).

use serde::{Deserialize, Serialize};

/// `POST /v1/agents`: an agent says it is alive, where it takes jobs, and what it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub name: String,
    /// The agent's base URL (`http://host:port`).
    pub url: String,
    /// Ids of the jobs it is running.
    #[serde(default)]
    pub running: Vec<String>,
}

/// `POST {agent}/v1/runs`: a job for the agent to run. The correlation id and `traceparent`
/// also travel as headers.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub job: String,
    pub config_name: String,
    pub config: String,
    pub input: Option<String>,
    pub output: Option<String>,
    pub correlation_id: String,
    pub traceparent: Option<String>,
}

impl std::fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRequest")
            .field("job", &self.job)
            .field("config_name", &self.config_name)
            .finish_non_exhaustive()
    }
}

/// One line a job's process printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: String,
}

/// `POST /v1/jobs/{id}/lines`: lines of a job's processes, in the order read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lines {
    pub lines: Vec<Line>,
}

/// `POST /v1/jobs/{id}/outcome`: how the job's run ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
}
