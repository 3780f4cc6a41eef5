//! The coordinator's agents: who is alive (by heartbeat), what each runs, and the dispatcher
//! that hands queued jobs to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hopline_jobs::{JobId, JobState, Registry};
use serde::Serialize;

use crate::Token;
use crate::wire::RunRequest;

/// One agent, as its heartbeats describe it.
struct Agent {
    url: String,
    last_seen: Instant,
}

/// Every agent and which agent runs which job.
#[derive(Default)]
pub(crate) struct Agents {
    table: Mutex<Table>,
    /// Wakes the dispatcher (a job was submitted, an agent appeared).
    pub(crate) wake: tokio::sync::Notify,
}

#[derive(Default)]
struct Table {
    agents: HashMap<String, Agent>,
    /// Which agent runs each job, and since when.
    assigned: HashMap<JobId, (String, Instant)>,
}

/// How long after a dispatch an agent has to list the job as running before its absence
/// means the agent lost it (restarted, say).
const LISTING_GRACE: Duration = Duration::from_secs(5);

/// An agent as `GET /v1/agents` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct AgentView {
    name: String,
    url: String,
    last_seen_ms_ago: u64,
    running: Vec<String>,
}

impl Agents {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes a heartbeat; a new agent wakes the dispatcher. Returns the jobs assigned to it
    /// (for longer than [`LISTING_GRACE`]) that it no longer lists as running: it lost them.
    pub(crate) fn heartbeat(&self, name: &str, url: &str, running: &[String]) -> Vec<JobId> {
        let (new, lost) = {
            let mut table = self.lock();
            let agent = Agent { url: url.to_string(), last_seen: Instant::now() };
            let new = table.agents.insert(name.to_string(), agent).is_none();
            let lost: Vec<JobId> = table
                .assigned
                .iter()
                .filter(|(job, (agent, since))| {
                    agent == name && since.elapsed() > LISTING_GRACE && !running.contains(&job.to_string())
                })
                .map(|(job, _)| *job)
                .collect();
            lost.iter().for_each(|job| {
                table.assigned.remove(job);
            });
            (new, lost)
        };
        if new {
            self.wake.notify_one();
        }
        lost
    }

    pub(crate) fn list(&self) -> Vec<AgentView> {
        let table = self.lock();
        let mut views: Vec<AgentView> = table
            .agents
            .iter()
            .map(|(name, agent)| AgentView {
                name: name.clone(),
                url: agent.url.clone(),
                last_seen_ms_ago: agent.last_seen.elapsed().as_millis() as u64,
                running: table
                    .assigned
                    .iter()
                    .filter(|(_, (a, _))| a == name)
                    .map(|(job, _)| job.to_string())
                    .collect(),
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// The agent running `job` and its URL.
    pub(crate) fn agent_of(&self, job: JobId) -> Option<(String, String)> {
        let table = self.lock();
        let (name, _) = table.assigned.get(&job)?;
        Some((name.clone(), table.agents.get(name)?.url.clone()))
    }

    pub(crate) fn finished(&self, job: JobId) {
        self.lock().assigned.remove(&job);
    }

    /// The live agent with the fewest jobs, if any.
    fn pick(&self) -> Option<(String, String)> {
        let table = self.lock();
        table
            .agents
            .iter()
            .min_by_key(|(name, _)| (table.assigned.values().filter(|(a, _)| a == *name).count(), (*name).clone()))
            .map(|(name, agent)| (name.clone(), agent.url.clone()))
    }

    /// Forgets agents silent for longer than `timeout`; returns each with its jobs and how
    /// long it has been silent.
    fn expire(&self, timeout: Duration) -> Vec<(String, Duration, Vec<JobId>)> {
        let mut table = self.lock();
        let silent: Vec<(String, Duration)> = table
            .agents
            .iter()
            .filter(|(_, a)| a.last_seen.elapsed() > timeout)
            .map(|(name, a)| (name.clone(), a.last_seen.elapsed()))
            .collect();
        silent
            .into_iter()
            .map(|(name, since)| {
                table.agents.remove(&name);
                let jobs: Vec<JobId> =
                    table.assigned.iter().filter(|(_, (a, _))| *a == name).map(|(j, _)| *j).collect();
                jobs.iter().for_each(|j| {
                    table.assigned.remove(j);
                });
                (name, since, jobs)
            })
            .collect()
    }
}

/// Hands queued jobs to agents, oldest first, and fails the jobs of agents that stopped
/// heartbeating. Runs for the coordinator's life.
pub(crate) async fn dispatch(registry: Arc<Registry>, agents: Arc<Agents>, token: Token, agent_timeout: Duration) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(250), agents.wake.notified()).await;
        for (name, since, jobs) in agents.expire(agent_timeout) {
            for job in jobs {
                let reason = format!(
                    "agent `{name}` stopped heartbeating (last heard {:.1} s ago); its run is presumed lost",
                    since.as_secs_f64()
                );
                let _ = registry.transition(job, JobState::Failed, Some(reason), None);
            }
        }
        for job in registry.queued() {
            let Some((name, url)) = agents.pick() else { break };
            let Some(request) = registry.request(job) else { continue };
            // Running before the agent hears of it: a job that ends at once still finds its
            // state able to end.
            if registry.transition(job, JobState::Running, None, Some(name.clone())).is_err() {
                continue; // cancelled meanwhile
            }
            agents.lock().assigned.insert(job, (name.clone(), Instant::now()));
            // Cancelled between the transition and now: the agent never hears of it.
            if registry.view(job).is_none_or(|v| v.state != JobState::Running) {
                agents.finished(job);
                continue;
            }
            let body = RunRequest {
                job: job.to_string(),
                config_name: request.config_name,
                config: request.config_text,
                input: request.input,
                output: request.output,
                correlation_id: request.correlation_id.clone(),
                traceparent: request.traceparent.clone(),
            };
            let mut post = client
                .post(format!("{url}/v1/runs"))
                .header("authorization", token.header_value().as_str())
                .header("content-type", "application/json")
                .header("x-correlation-id", &request.correlation_id)
                .body(serde_json::to_string(&body).unwrap_or_default());
            if let Some(traceparent) = &request.traceparent {
                post = post.header("traceparent", traceparent);
            }
            let refused = match post.send().await {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => {
                    let status = response.status();
                    Some(format!("answered {status}: {}", response.text().await.unwrap_or_default().trim()))
                }
                Err(e) => Some(format!("could not be reached: {e}")),
            };
            if let Some(why) = refused {
                agents.finished(job);
                let reason = format!("agent `{name}` ({url}) did not take the job: it {why}");
                let _ = registry.transition(job, JobState::Failed, Some(reason), None);
            }
        }
    }
}

/// Fails the jobs an agent lost (it no longer lists them as running).
pub(crate) fn fail_lost(registry: &Registry, name: &str, lost: Vec<JobId>) {
    for job in lost {
        let reason = format!("agent `{name}` no longer runs this job (it restarted, or lost the run)");
        let _ = registry.transition(job, JobState::Failed, Some(reason), None);
    }
}

/// Asks each configured agent for its health every second; an answer counts as a heartbeat.
pub(crate) async fn poll_configured(registry: Arc<Registry>, agents: Arc<Agents>, configured: Vec<(String, String)>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for (name, url) in &configured {
            let Ok(response) = client.get(format!("{url}/v1/health")).send().await else { continue };
            if !response.status().is_success() {
                continue;
            }
            let health: serde_json::Value = response.json_value().await;
            let running: Vec<String> = health["running_jobs"]
                .as_array()
                .map(|jobs| jobs.iter().filter_map(|j| j.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let lost = agents.heartbeat(name, url, &running);
            fail_lost(&registry, name, lost);
        }
    }
}

/// A response body as JSON (null when it is not).
trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        self.text().await.ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }
}
