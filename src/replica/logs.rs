//! Canister logs, as the IC keeps them for `fetch_canister_logs`: every
//! `debug_print` line and trap message of replicated executions (those
//! that trapped too), numbered and timestamped, in a buffer of
//! [`LOG_BUFFER_BYTES`] per canister from which the oldest records go first.

use std::collections::VecDeque;

use candid::CandidType;
use serde::Deserialize;

use super::exec::LogLine;

/// The IC's canister log buffer size (content bytes kept per canister).
pub const LOG_BUFFER_BYTES: usize = 4 << 10;

/// One record, as `fetch_canister_logs` returns it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CanisterLogRecord {
    pub idx: u64,
    pub timestamp_nanos: u64,
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
}

/// `fetch_canister_logs`'s reply.
#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct FetchCanisterLogsResult {
    pub canister_log_records: Vec<CanisterLogRecord>,
}

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CanisterLog {
    records: VecDeque<CanisterLogRecord>,
    bytes: usize,
    next_idx: u64,
}

impl CanisterLog {
    /// Appends lines; the oldest records go when the buffer is full. A
    /// single line larger than the buffer is cut to fit.
    pub fn append(&mut self, lines: Vec<LogLine>) {
        for line in lines {
            let mut content = line.content;
            content.truncate(LOG_BUFFER_BYTES);
            self.bytes += content.len();
            self.records.push_back(CanisterLogRecord {
                idx: self.next_idx,
                timestamp_nanos: line.time,
                content,
            });
            self.next_idx += 1;
            while self.bytes > LOG_BUFFER_BYTES {
                match self.records.pop_front() {
                    Some(r) => self.bytes -= r.content.len(),
                    None => break,
                }
            }
        }
    }

    pub fn records(&self) -> Vec<CanisterLogRecord> {
        self.records.iter().cloned().collect()
    }

    /// Forgets everything (the canister was uninstalled or reinstalled the
    /// index keeps counting).
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: u64, s: &str) -> LogLine {
        LogLine { time: t, content: s.as_bytes().to_vec() }
    }

    #[test]
    fn numbers_records_and_drops_the_oldest_past_the_buffer() {
        let mut log = CanisterLog::default();
        log.append(vec![line(1, "a"), line(2, "b")]);
        assert_eq!(log.records().iter().map(|r| (r.idx, r.timestamp_nanos)).collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
        let big = "x".repeat(LOG_BUFFER_BYTES - 1);
        log.append(vec![line(3, &big)]);
        let records = log.records();
        assert_eq!(records.iter().map(|r| r.idx).collect::<Vec<_>>(), vec![1, 2], "the oldest went first");
        assert!(records.iter().map(|r| r.content.len()).sum::<usize>() <= LOG_BUFFER_BYTES);
    }
}
