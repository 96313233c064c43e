"""The client-side sliding-window limiter, on a fake clock."""

from crm_pipelines.core.ratelimit import SlidingWindowLimiter


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make(max_calls=3, period=10.0):
    clock = FakeClock()
    return SlidingWindowLimiter(max_calls, period, safety_margin_s=0.0, clock=clock.time, sleep=clock.sleep), clock


def sends_in_any_window(times, period):
    return max(sum(1 for t in times if start <= t < start + period) for start in times)


def test_never_more_than_max_calls_in_any_window():
    limiter, clock = make(3, 10.0)
    sent = []
    for _ in range(10):
        limiter.acquire()
        sent.append(clock.now)
        clock.now += 1.0
    assert sends_in_any_window(sent, 10.0) == 3
    # the 4th send waited for the 1st to leave the window
    assert sent[3] == sent[0] + 10.0


def test_burst_then_paced():
    limiter, clock = make(5, 1.0)
    start = clock.now
    for _ in range(15):
        limiter.acquire()
    # 5 immediately, then 5 per further second: 15 sends need 2 extra seconds
    assert clock.now - start == 2.0


def test_headers_reporting_less_room_slow_us_down():
    limiter, clock = make(10, 10.0)
    limiter.acquire()
    assert limiter.remaining() == 9
    limiter.observe(remaining=2)
    assert limiter.remaining() == 2
    limiter.observe(max_calls=190, remaining=189)
    assert limiter.max_calls == 190


def test_saturate_blocks_until_window_passes():
    limiter, clock = make(10, 10.0)
    start = clock.now
    limiter.saturate()
    limiter.acquire()
    assert clock.now - start >= 10.0
