//! The job registry: every job the coordinator knows, its state and its event stream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hopline_model::clock::rfc3339;
use serde::Serialize;
use tokio::sync::watch;

use crate::events::{EventBuffer, EventKind, Resume};
use crate::job::{JobId, JobState, JobTimes, TransitionError};

/// What a client asked to run.
#[derive(Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// The pipeline config's name as the client knows it (its file name), for people.
    pub config_name: String,
    /// The config's text.
    pub config_text: String,
    /// Paths on the agent's host, replacing the config's source and sink paths.
    pub input: Option<String>,
    pub output: Option<String>,
    /// 32 hex digits: the client's `x-correlation-id`, or one the coordinator made.
    pub correlation_id: String,
    /// The client's W3C `traceparent`, if it sent one.
    pub traceparent: Option<String>,
}

impl std::fmt::Debug for JobRequest {
    /// The config's text is left out: it can be long, and may hold what its author did not
    /// mean to print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRequest")
            .field("config_name", &self.config_name)
            .field("config_bytes", &self.config_text.len())
            .field("input", &self.input)
            .field("output", &self.output)
            .field("correlation_id", &self.correlation_id)
            .field("traceparent", &self.traceparent)
            .finish()
    }
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    pub id: String,
    pub state: JobState,
    pub config: String,
    pub correlation_id: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// The agent running it, once one took it.
    pub agent: Option<String>,
    /// The id of the newest event of its stream.
    pub last_event_id: u64,
}

/// What the registry refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("no job {0}")]
    NotFound(JobId),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("job {0} has finished: its stream takes no more events")]
    Ended(JobId),
    #[error("`{0}` events are appended by state changes, not directly")]
    NotAppendable(&'static str),
    #[error("cannot make a job id: {0}")]
    Random(String),
}

struct Entry {
    request: JobRequest,
    state: JobState,
    times: JobTimes,
    reason: Option<String>,
    agent: Option<String>,
    events: EventBuffer,
    /// The newest event id, for stream readers waiting for more.
    newest: watch::Sender<u64>,
}

impl Entry {
    fn view(&self, id: JobId) -> JobView {
        JobView {
            id: id.to_string(),
            state: self.state,
            config: self.request.config_name.clone(),
            correlation_id: self.request.correlation_id.clone(),
            created_at: rfc3339(self.times.created),
            started_at: self.times.started.map(rfc3339),
            finished_at: self.times.finished.map(rfc3339),
            reason: self.reason.clone(),
            agent: self.agent.clone(),
            last_event_id: self.events.last_id(),
        }
    }

    fn push(&mut self, kind: EventKind, data: String) -> Option<u64> {
        let id = self.events.push(kind, data)?;
        self.newest.send_replace(id);
        Some(id)
    }
}

/// Every job, behind one lock held only for bookkeeping (never across I/O).
pub struct Registry {
    jobs: Mutex<HashMap<JobId, Entry>>,
    event_capacity: usize,
    retention: Duration,
}

impl Registry {
    /// Events kept per job unless configured: at 4 KiB a narration line at most, 40 MiB for
    /// a job at worst; a run narrates a few lines a second.
    pub const DEFAULT_EVENT_CAPACITY: usize = 10_000;

    /// How long finished jobs are kept unless configured.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

    pub fn new(event_capacity: usize, retention: Duration) -> Registry {
        Registry { jobs: Mutex::new(HashMap::new()), event_capacity, retention }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Entry>> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a job, queued; its stream starts with a `state` event.
    pub fn submit(&self, request: JobRequest) -> Result<JobId, RegistryError> {
        let id = JobId::generate().map_err(|e| RegistryError::Random(e.to_string()))?;
        let now = SystemTime::now();
        let (newest, _) = watch::channel(0);
        let mut entry = Entry {
            request,
            state: JobState::Queued,
            times: JobTimes { created: now, started: None, finished: None },
            reason: None,
            agent: None,
            events: EventBuffer::new(self.event_capacity),
            newest,
        };
        entry.push(EventKind::State, state_data(JobState::Queued, None, None, now));
        self.lock().insert(id, entry);
        Ok(id)
    }

    pub fn view(&self, id: JobId) -> Option<JobView> {
        self.lock().get(&id).map(|e| e.view(id))
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobView> {
        let jobs = self.lock();
        let mut views: Vec<(SystemTime, JobView)> = jobs.iter().map(|(id, e)| (e.times.created, e.view(*id))).collect();
        views.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        views.into_iter().map(|(_, v)| v).collect()
    }

    /// The request of a job (for the agent that runs it).
    pub fn request(&self, id: JobId) -> Option<JobRequest> {
        self.lock().get(&id).map(|e| e.request.clone())
    }

    /// Ids of the queued jobs, oldest first.
    pub fn queued(&self) -> Vec<JobId> {
        let jobs = self.lock();
        let mut queued: Vec<(SystemTime, JobId)> =
            jobs.iter().filter(|(_, e)| e.state == JobState::Queued).map(|(id, e)| (e.times.created, *id)).collect();
        queued.sort();
        queued.into_iter().map(|(_, id)| id).collect()
    }

    /// Moves a job to `to`, if its state machine allows it, noting `reason` (why it failed
    /// or was cancelled) and `agent` (who runs it). Appends a `state` event, or the terminal
    /// event that ends its stream.
    pub fn transition(
        &self,
        id: JobId,
        to: JobState,
        reason: Option<String>,
        agent: Option<String>,
    ) -> Result<JobView, RegistryError> {
        let mut jobs = self.lock();
        let entry = jobs.get_mut(&id).ok_or(RegistryError::NotFound(id))?;
        if !entry.state.may_become(to) {
            return Err(TransitionError { from: entry.state, to }.into());
        }
        let now = SystemTime::now();
        entry.state = to;
        if to == JobState::Running {
            entry.times.started = Some(now);
        }
        if to.is_terminal() {
            entry.times.finished = Some(now);
        }
        if reason.is_some() {
            entry.reason = reason;
        }
        if agent.is_some() {
            entry.agent = agent;
        }
        let kind = match to {
            JobState::Succeeded => EventKind::Succeeded,
            JobState::Failed => EventKind::Failed,
            JobState::Cancelled => EventKind::Cancelled,
            JobState::Queued | JobState::Running => EventKind::State,
        };
        let data = state_data(to, entry.reason.as_deref(), entry.agent.as_deref(), now);
        entry.push(kind, data);
        Ok(entry.view(id))
    }

    /// Appends a narration or log event (data: one line of JSON). Refused after the job's
    /// terminal event.
    pub fn append(&self, id: JobId, kind: EventKind, data: String) -> Result<u64, RegistryError> {
        if !matches!(kind, EventKind::Narration | EventKind::Log) {
            return Err(RegistryError::NotAppendable(kind.name()));
        }
        let mut jobs = self.lock();
        let entry = jobs.get_mut(&id).ok_or(RegistryError::NotFound(id))?;
        entry.push(kind, data).ok_or(RegistryError::Ended(id))
    }

    /// The events after `after`, and a receiver that changes when more arrive.
    pub fn resume(&self, id: JobId, after: u64) -> Result<(Resume, watch::Receiver<u64>), RegistryError> {
        let jobs = self.lock();
        let entry = jobs.get(&id).ok_or(RegistryError::NotFound(id))?;
        Ok((entry.events.since(after), entry.newest.subscribe()))
    }

    /// Removes the jobs that finished more than the retention ago; returns their ids. A
    /// client still following one sees its stream end (it has its terminal event already).
    pub fn expire(&self, now: SystemTime) -> Vec<JobId> {
        let mut jobs = self.lock();
        let retention = self.retention;
        let expired: Vec<JobId> = jobs
            .iter()
            .filter(|(_, e)| e.times.finished.is_some_and(|f| now.duration_since(f).unwrap_or_default() >= retention))
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            jobs.remove(id);
        }
        expired
    }
}

/// A state event's data: the state, when, and why or who when known.
fn state_data(state: JobState, reason: Option<&str>, agent: Option<&str>, at: SystemTime) -> String {
    let mut data = serde_json::json!({ "state": state, "at": rfc3339(at) });
    if let Some(reason) = reason {
        data["reason"] = reason.into();
    }
    if let Some(agent) = agent {
        data["agent"] = agent.into();
    }
    data.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> JobRequest {
        JobRequest {
            config_name: "baseline.yml".into(),
            config_text: "app: fund_load\n".into(),
            input: Some("/data/in.txt".into()),
            output: None,
            correlation_id: "0af7651916cd43dd8448eb211c80319c".into(),
            traceparent: None,
        }
    }

    #[test]
    fn a_job_goes_from_queued_to_a_terminal_state_with_its_events_and_times() {
        let registry = Registry::new(100, Duration::from_secs(60));
        let id = registry.submit(request()).unwrap();
        assert_eq!(registry.queued(), [id]);
        let view = registry.view(id).unwrap();
        assert_eq!((view.state, view.last_event_id, view.started_at.is_none()), (JobState::Queued, 1, true));
        registry.transition(id, JobState::Running, None, Some("agent-1".into())).unwrap();
        registry.append(id, EventKind::Narration, "{\"narration\":1}".into()).unwrap();
        registry.append(id, EventKind::Log, "{\"line\":\"hello\"}".into()).unwrap();
        let view = registry.transition(id, JobState::Failed, Some("node `fault` failed".into()), None).unwrap();
        assert_eq!(view.state, JobState::Failed);
        assert_eq!(view.agent.as_deref(), Some("agent-1"));
        assert!(view.started_at.is_some() && view.finished_at.is_some());
        let (resume, _) = registry.resume(id, 0).unwrap();
        let kinds: Vec<EventKind> = resume.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::State, EventKind::State, EventKind::Narration, EventKind::Log, EventKind::Failed]
        );
        assert!(resume.ended);
        assert!(resume.events[4].data.contains("node `fault` failed"));
        assert!(registry.queued().is_empty());
    }

    #[test]
    fn transitions_the_machine_forbids_are_refused_and_change_nothing() {
        let registry = Registry::new(100, Duration::from_secs(60));
        let id = registry.submit(request()).unwrap();
        let e = registry.transition(id, JobState::Succeeded, None, None).unwrap_err();
        assert_eq!(e.to_string(), "a queued job cannot become succeeded");
        registry.transition(id, JobState::Cancelled, Some("cancelled by the client".into()), None).unwrap();
        assert!(registry.transition(id, JobState::Running, None, None).is_err());
        assert_eq!(registry.append(id, EventKind::Log, "{}".into()), Err(RegistryError::Ended(id)));
        assert_eq!(registry.append(id, EventKind::Failed, "{}".into()), Err(RegistryError::NotAppendable("failed")));
        assert_eq!(registry.view(id).unwrap().state, JobState::Cancelled);
        let unknown = JobId::generate().unwrap();
        assert_eq!(registry.view(unknown), None);
        assert_eq!(registry.transition(unknown, JobState::Running, None, None), Err(RegistryError::NotFound(unknown)));
    }

    #[test]
    fn finished_jobs_are_removed_after_the_retention_and_running_ones_never() {
        let registry = Registry::new(100, Duration::from_secs(60));
        let done = registry.submit(request()).unwrap();
        let running = registry.submit(request()).unwrap();
        registry.transition(done, JobState::Cancelled, None, None).unwrap();
        registry.transition(running, JobState::Running, None, None).unwrap();
        let now = SystemTime::now();
        assert!(registry.expire(now + Duration::from_secs(59)).is_empty());
        assert_eq!(registry.expire(now + Duration::from_secs(61)), [done]);
        assert!(registry.view(done).is_none());
        assert!(registry.view(running).is_some());
        assert!(registry.expire(now + Duration::from_secs(10_000)).is_empty());
    }

    #[tokio::test]
    async fn a_reader_waiting_for_more_is_woken_by_each_new_event() {
        let registry = std::sync::Arc::new(Registry::new(100, Duration::from_secs(60)));
        let id = registry.submit(request()).unwrap();
        let (resume, mut newest) = registry.resume(id, 0).unwrap();
        assert_eq!(resume.events.len(), 1);
        let writer = std::sync::Arc::clone(&registry);
        let appended = tokio::task::spawn_blocking(move || writer.append(id, EventKind::Log, "{}".into()));
        tokio::time::timeout(Duration::from_secs(10), newest.changed()).await.unwrap().unwrap();
        assert_eq!(appended.await.unwrap(), Ok(2));
        let (resume, _) = registry.resume(id, 1).unwrap();
        assert_eq!(resume.events.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn the_list_is_oldest_first_and_the_request_debug_leaves_out_the_config() {
        let registry = Registry::new(100, Duration::from_secs(60));
        let a = registry.submit(request()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = registry.submit(request()).unwrap();
        let ids: Vec<String> = registry.list().into_iter().map(|v| v.id).collect();
        assert_eq!(ids, [a.to_string(), b.to_string()]);
        let debug = format!("{:?}", registry.request(a).unwrap());
        assert!(!debug.contains("app: fund_load") && debug.contains("config_bytes: 15"), "{debug}");
    }
}
