"""The resolution table and the token bucket, on their own."""
from __future__ import annotations

import re
import threading

import pytest

from shared.ssm.lookups import normalise
from shared.ssm.ratelimit import TokenBucket
from shared.ssm.resolution import (CONNECTION, LOGIN, RESOLUTIONS, TIMEOUT, Action, entity_label,
                                   resolve)


@pytest.mark.parametrize("status,code,operation,action", [
    (429, None, "GET", Action.RETRY),
    (500, None, "PUT", Action.RETRY),
    (500, 900, "POST", Action.RETRY),
    (502, None, "GET", Action.RETRY),
    (503, None, "DELETE", Action.RETRY),
    (504, None, "GET", Action.RETRY),
    (TIMEOUT, None, "GET", Action.RETRY),
    (CONNECTION, None, "POST", Action.RETRY),
    (401, None, "GET", Action.RELOGIN),
    (401, None, LOGIN, Action.AUTH),
    (400, None, LOGIN, Action.AUTH),
    (429, None, LOGIN, Action.RETRY),
    (400, None, "POST", Action.RECORD),
    (400, 910, "POST", Action.RECORD),
    (400, 901, "GET", Action.RECORD),
    (400, None, "GET", Action.RECORD),       # an unknown id: the client then looks the id up
    (400, None, "DELETE", Action.RECORD),
    (404, None, "DELETE", Action.SKIP),      # undocumented, tolerated
    (403, None, "PUT", Action.RECORD),
    (418, None, "GET", Action.RECORD),
    (501, None, "GET", Action.RECORD),
    (302, None, "GET", Action.RECORD),
])
def test_resolution(status, code, operation, action):
    assert resolve(status, code, operation).action is action


def test_every_sentence_renders_without_placeholders():
    for row in RESOLUTIONS:
        text = row.render(entity="le compte", target="le compte 12", resource="accounts", message="bad",
                          status=400, attempts=3, timeout="30", public_key="fm-pub…")
        assert not re.search(r"[{}]", text), text
        assert text[0].isupper()
    assert resolve(400, None, "POST").render(entity="le contact") == "SSM a refusé le contact : « sans précision »"


def test_entity_labels():
    assert entity_label("salesordersLines") == "la ligne de document de vente"
    assert entity_label("somethingNew") == "la ressource « somethingNew »"


def test_lookup_normalisation():
    assert normalise("Brouillon – En  attente") == normalise("brouillon - en attente")
    assert normalise(" Siège ") == "siège"


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))


def test_bucket_spaces_requests_at_the_rate():
    fake = FakeTime()
    bucket = TokenBucket(10, clock=fake.clock, sleep=fake.sleep)
    for _ in range(4):
        bucket.acquire()
    assert fake.slept == [0.1, 0.2, 0.3]          # reservations queue up, nobody spins


def test_bucket_refills_with_time_up_to_the_burst():
    fake = FakeTime()
    bucket = TokenBucket(10, burst=3, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        bucket.acquire()
    fake.now += 10
    for _ in range(3):
        bucket.acquire()
    assert fake.slept == []
    bucket.acquire()
    assert fake.slept == [0.1]


def test_hold_stops_everyone_until_the_time_has_passed():
    fake = FakeTime()
    bucket = TokenBucket(10, clock=fake.clock, sleep=fake.sleep)
    bucket.hold(2.0)
    bucket.acquire()
    assert fake.slept == [2.0]


def test_bucket_is_shared_safely_between_threads():
    fake = FakeTime()
    lock = threading.Lock()
    bucket = TokenBucket(100, clock=fake.clock, sleep=lambda s: None)
    count = []

    def take():
        for _ in range(50):
            bucket.acquire()
            with lock:
                count.append(1)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(count) == 200
    assert bucket.acquire() == pytest.approx(2.0)   # 200 reserved at 100/s (1 free), then this one


def test_bucket_rejects_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(1, burst=0.5)
