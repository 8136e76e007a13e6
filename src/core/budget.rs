//! The process-wide budget for part buffers. Each upload may hold `partSize × queueSize` of
//! them, so a hundred uploads at once could hold gigabytes; together they take at most the
//! budget, and an upload that would go past it waits (in turn: the semaphore serves waiters
//! first come, first served) until buffers are freed.

use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, Semaphore};

use crate::core::error::{Error, Result};

/// The budget counts whole KiB, so that one buffer's share fits a `u32` of permits.
const UNIT: u64 = 1024;
/// The default is an eighth of the memory the process may use, within these bounds.
const DEFAULT_FLOOR: u64 = 64 << 20;
const DEFAULT_CAP: u64 = 1 << 30;
/// Where that memory cannot be read (not Linux).
const DEFAULT_UNKNOWN: u64 = 256 << 20;

static GLOBAL: LazyLock<MemoryBudget> = LazyLock::new(|| MemoryBudget::new(default_limit()));

pub struct MemoryBudget {
    permits: Semaphore,
    ledger: Mutex<Ledger>,
    /// Wakes the waiters when the limit changes, to ask again for a share of the new one.
    resized: Notify,
}

/// In units.
struct Ledger {
    limit: u64,
    in_use: u64,
    /// The most in use since the limit was set.
    peak: u64,
    waiting: usize,
    /// What freed buffers still owe a lowered limit: kept from the semaphore when freed.
    owed: u64,
}

/// The budget as it stands, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub limit: u64,
    pub in_use: u64,
    pub peak: u64,
    /// Uploads that hold no buffer and wait for one (one that holds some waits for those).
    pub waiting: usize,
}

/// A buffer's share of the budget, given back when dropped.
pub struct Reservation {
    budget: &'static MemoryBudget,
    units: u32,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> MemoryBudget {
        let units = limit_units(limit);
        MemoryBudget {
            permits: Semaphore::new(units as usize),
            ledger: Mutex::new(Ledger { limit: units, in_use: 0, peak: 0, waiting: 0, owed: 0 }),
            resized: Notify::new(),
        }
    }

    /// The budget every store's uploads share.
    pub fn global() -> &'static MemoryBudget {
        &GLOBAL
    }

    /// Lowered below what is in use, the new limit holds once enough buffers are freed; no
    /// buffer is taken back.
    pub fn set_limit(&self, bytes: u64) {
        let units = limit_units(bytes);
        let mut ledger = self.ledger();
        if units >= ledger.limit {
            let repaid = (units - ledger.limit).min(ledger.owed);
            ledger.owed -= repaid;
            self.permits.add_permits((units - ledger.limit - repaid) as usize);
        } else {
            let cut = ledger.limit - units;
            ledger.owed += cut - self.permits.forget_permits(cut as usize) as u64;
        }
        ledger.limit = units;
        ledger.peak = ledger.in_use;
        self.resized.notify_waiters();
    }

    pub fn usage(&self) -> Usage {
        let ledger = self.ledger();
        Usage {
            limit: ledger.limit * UNIT,
            in_use: ledger.in_use * UNIT,
            peak: ledger.peak * UNIT,
            waiting: ledger.waiting,
        }
    }

    /// Waits for a share for a buffer of `bytes`. A buffer larger than the whole budget gets
    /// all of it, so that every upload can go on, one part at a time.
    pub async fn reserve(&'static self, bytes: usize) -> Result<Reservation> {
        let _waiting = Waiting::enter(self);
        loop {
            let (units, resized) = {
                let ledger = self.ledger();
                (ledger.share(bytes), self.resized.notified())
            };
            tokio::select! {
                permits = self.permits.acquire_many(units) => {
                    permits.map_err(|_| Error::Internal("the memory budget was closed".into()))?.forget();
                    return Ok(self.taken(units));
                }
                // Asked against the old limit: more than there may ever be, or less than is due.
                () = resized => {}
            }
        }
    }

    /// A share at once, or none; never ahead of an upload that waits.
    pub fn try_reserve(&'static self, bytes: usize) -> Option<Reservation> {
        let units = self.ledger().share(bytes);
        self.permits.try_acquire_many(units).ok()?.forget();
        Some(self.taken(units))
    }

    fn taken(&'static self, units: u32) -> Reservation {
        let mut ledger = self.ledger();
        ledger.in_use += u64::from(units);
        ledger.peak = ledger.peak.max(ledger.in_use);
        Reservation { budget: self, units }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ledger {
    fn share(&self, bytes: usize) -> u32 {
        (bytes as u64).div_ceil(UNIT).min(self.limit).min(u64::from(u32::MAX)) as u32
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut ledger = self.budget.ledger();
        let units = u64::from(self.units);
        let repaid = units.min(ledger.owed);
        ledger.owed -= repaid;
        ledger.in_use -= units;
        self.budget.permits.add_permits((units - repaid) as usize);
    }
}

/// Counts an upload as waiting for as long as it does, however the wait ends.
struct Waiting(&'static MemoryBudget);

impl Waiting {
    fn enter(budget: &'static MemoryBudget) -> Waiting {
        budget.ledger().waiting += 1;
        Waiting(budget)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.ledger().waiting -= 1;
    }
}

/// At least one unit, and no more than the semaphore can count.
fn limit_units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS as u64)
}

fn default_limit() -> u64 {
    usable_memory().map_or(DEFAULT_UNKNOWN, |total| (total / 8).clamp(DEFAULT_FLOOR, DEFAULT_CAP))
}

/// The machine's memory, or its container's limit when lower (cgroup v2, then v1: a v1 limit
/// of "none" reads as a number past any machine's memory).
fn usable_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find_map(|line| line.strip_prefix("MemTotal:"))?;
    let total = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?.checked_mul(1024)?;
    let container = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok());
    Some(container.map_or(total, |limit| limit.min(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: u64) -> &'static MemoryBudget {
        Box::leak(Box::new(MemoryBudget::new(bytes)))
    }

    #[tokio::test]
    async fn shares_are_whole_kib_and_given_back_when_dropped() {
        let budget = budget(10 << 10);
        let first = budget.reserve(1).await.unwrap();
        let second = budget.try_reserve(4097).unwrap();
        assert_eq!(budget.usage(), Usage { limit: 10 << 10, in_use: 6 << 10, peak: 6 << 10, waiting: 0 });
        assert!(budget.try_reserve(5 << 10).is_none());
        drop((first, second));
        assert_eq!(budget.usage().in_use, 0);
        assert!(budget.try_reserve(10 << 10).is_some());
    }

    #[tokio::test]
    async fn a_buffer_larger_than_the_budget_gets_all_of_it() {
        let budget = budget(4 << 10);
        let whole = budget.reserve(1 << 20).await.unwrap();
        assert_eq!(budget.usage().in_use, 4 << 10);
        drop(whole);
    }

    #[tokio::test]
    async fn a_wait_ends_when_a_share_is_freed_or_the_limit_grows_and_counts_while_it_lasts() {
        let budget = budget(8 << 10);
        let held = budget.reserve(8 << 10).await.unwrap();
        let waiter = tokio::spawn(budget.reserve(8 << 10));
        while budget.usage().waiting == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let held = waiter.await.unwrap().unwrap();
        assert_eq!(budget.usage().waiting, 0);

        let waiter = tokio::spawn(budget.reserve(4 << 10));
        while budget.usage().waiting == 0 {
            tokio::task::yield_now().await;
        }
        budget.set_limit(12 << 10);
        let more = waiter.await.unwrap().unwrap();
        assert_eq!(budget.usage().in_use, 12 << 10);
        drop((held, more));
    }

    #[tokio::test]
    async fn a_cancelled_wait_is_no_longer_counted() {
        let budget = budget(1 << 10);
        let _held = budget.reserve(1 << 10).await.unwrap();
        let wait = tokio::time::timeout(std::time::Duration::from_millis(5), budget.reserve(1 << 10)).await;
        assert!(wait.is_err());
        assert_eq!(budget.usage().waiting, 0);
    }

    #[tokio::test]
    async fn a_lowered_limit_holds_once_enough_is_freed_and_wakes_a_wait_for_more_than_it() {
        let budget = budget(16 << 10);
        let a = budget.reserve(8 << 10).await.unwrap();
        let b = budget.reserve(8 << 10).await.unwrap();
        // Asks for 16 KiB, more than the lowered limit will ever have: asks again for 4.
        let waiter = tokio::spawn(budget.reserve(16 << 10));
        while budget.usage().waiting == 0 {
            tokio::task::yield_now().await;
        }
        budget.set_limit(4 << 10);
        drop(a);
        assert!(budget.try_reserve(1).is_none(), "freed bytes went past the lowered limit");
        drop(b);
        let c = waiter.await.unwrap().unwrap();
        assert_eq!(budget.usage(), Usage { limit: 4 << 10, in_use: 4 << 10, peak: 16 << 10, waiting: 0 });
        drop(c);
        budget.set_limit(16 << 10);
        let all = budget.try_reserve(16 << 10).expect("the raised limit is all there");
        assert!(budget.try_reserve(1).is_none());
        drop(all);
    }

    #[test]
    fn the_default_is_within_its_bounds() {
        assert!((DEFAULT_FLOOR..=DEFAULT_CAP).contains(&default_limit()));
    }
}
