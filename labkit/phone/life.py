"""The phone's life after its first provisioning: scheduled resyncs, error retries, upgrades and
their retries, reboots and lease renewals, all on the phone's clock (a driver may compress it).

What the profile sets decides (labkit.phone.settings): "Resync Periodic and Resync Random Delay
determine subsequent requests" after success (S1, category A); after a failure "Resync Error Retry
Delay" (categories B and C); Upgrade_Error_Retry_Delay after a failed upgrade; Resync_On_Reset
after the reboot that ends an upgrade (reference §3.3, §6).
"""

from __future__ import annotations

from labkit.phone import dhcp
from labkit.phone.effects import Lease, LeaseFailed, Now, Sleep
from labkit.phone.fetching import Failure, Flow
from labkit.phone.rules import RuleRunner
from labkit.phone.settings import pick

MAX_EVENTS = 100_000  # a bound on one phone's scheduled events, whatever the duration


def renewal_interval(lease: Lease) -> float | None:
    """T1: option 58, else half the lease; None for a lease without a known time."""
    t1 = lease.options.get(58)
    if isinstance(t1, int) and t1 > 0:
        return float(t1)
    return lease.lease_time / 2 if lease.lease_time > 0 else None


class Life(RuleRunner):
    next_upgrade: float | None = None  # when a failed upgrade is tried again
    rules_ok: bool = False
    firmware_ok: bool = False
    rebooted: bool = False  # the boot ended with the reboot of an upgrade

    def _settle(self) -> None:
        self.outcome.provisioned = self.rules_ok and self.firmware_ok
        if self.outcome.provisioned:
            self.outcome.reason = None
            if self.outcome.provisioned_at is None and self.outcome.timeline:
                self.outcome.provisioned_at = self.outcome.timeline[-1].time

    def _try_upgrade(self, now: float) -> Flow:
        """One upgrade look; on failure the retry waits Upgrade_Error_Retry_Delay. True when a new
        load was installed (the phone reboots)."""
        before = self.outcome.firmware
        result = yield from self._upgrade()
        if isinstance(result, Failure):
            self.firmware_ok = False
            delay = self.settings().upgrade_retry
            self.next_upgrade = now + delay
            yield from self._step("wait", f"Upgrade_Error_Retry_Delay {delay:g} s")
            return False
        self.firmware_ok, self.next_upgrade = True, None
        if self.outcome.firmware != before:
            yield from self._step("reboot", f"after the upgrade to {self.outcome.firmware}")
            self.rebooted = True
            return True
        return False

    def _after_reboot(self, now: float, index: int) -> float | None:
        """Resync_On_Reset Yes: resync at once after the reboot; No: at the next scheduled time."""
        settings = self.settings()
        if settings.resync_on_reset:
            return now
        return settings.next_resync(now, index, self.random)

    def _live(self, lease: Lease) -> Flow:
        start = yield Now()
        end = start + self.config.duration
        index, errors, reset = 0, 0, False
        settings = self.settings()
        if self.rebooted:  # the boot's upgrade ended with a reboot
            next_resync = self._after_reboot(start, index)
            reset = self.settings().resync_on_reset
        elif self.rules_ok:
            next_resync = settings.next_resync(start, index, self.random)
        else:
            next_resync = start + pick(settings.error_delays, 0)
        t1 = renewal_interval(lease)
        renew_at = start + t1 if t1 is not None else None
        for _ in range(MAX_EVENTS):
            now = yield Now()
            due = [t for t in (renew_at, self.next_upgrade, next_resync) if t is not None]
            if not due or min(due) >= end:
                if end > now:
                    yield Sleep(end - now)
                return
            at = min(due)
            if at > now:
                yield Sleep(at - now)
            now = at
            if at == renew_at and t1 is not None:
                renewed = yield from dhcp.renew(lease, self.random, t1)
                if isinstance(renewed, LeaseFailed):
                    yield from self._step("renew", f"renewing {lease.ip} at T1 failed: {renewed.reason}",
                                          ok=False)
                    renew_at = None
                else:
                    lease = renewed
                    yield from self._step("renew", f"renewed {lease.ip} at T1 ({t1:g} s)")
                    renew_at = (yield Now()) + t1
            elif at == self.next_upgrade:
                if (yield from self._try_upgrade(now)):
                    next_resync = self._after_reboot(now, index)
                    reset = self.settings().resync_on_reset
                self._settle()
            else:
                kind = "retry" if errors else "Resync_On_Reset" if reset else "scheduled"
                reset = False
                yield from self._step("resync", f"{kind} resync (Profile_Rule, _B, _C, _D)")
                result = yield from self._sequence()
                now = yield Now()
                if isinstance(result, Failure):
                    self.outcome.resync_failures += 1
                    delay = pick(self.settings().error_delays, errors)
                    errors += 1
                    yield from self._step("wait", f"Resync_Error_Retry_Delay {delay:g} s")
                    next_resync = now + delay
                    continue
                self.outcome.resyncs += 1
                self.rules_ok, errors, index = True, 0, index + 1
                next_resync = self.settings().next_resync(now, index, self.random)
                if self.next_upgrade is None and (yield from self._try_upgrade(now)):
                    next_resync = self._after_reboot(now, index)
                    reset = self.settings().resync_on_reset
                self._settle()
