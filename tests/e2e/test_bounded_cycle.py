"""One cycle of `ssm-connector local` (`--once`) ends near its ceiling (`[agent] cycle_max_s`)
whatever the data and the state of SSM: what is left is said in French and the next cycle picks it
up (each bounded as well), converging as one uninterrupted cycle would."""
from __future__ import annotations

import time

D = "BIJOU"
CEILING_S = 4.0


def test_a_cycle_during_an_outage_stops_at_its_ceiling_and_the_next_one_finishes_the_work(make_pipeline):
    # Without a ceiling, each redelivery of a batch would wait 2, 4, 8 … up to 96 s: minutes per batch.
    p = make_pipeline(environ={"SSMCONN__AGENT__CYCLE_MAX_S": str(CEILING_S),
                               "SSMCONN__BUS__REDELIVERY_BACKOFF_S": "2", "SSMCONN__SSM__MAX_RETRIES": "0"})
    p.simulator.faults.error_statuses = (503,)
    p.simulator.faults.error_rate = 1.0

    started = time.monotonic()
    summary = p.run()
    seconds = time.monotonic() - started

    assert seconds < CEILING_S + 20, f"the cycle took {seconds:.0f} s"      # not the minutes of every delivery
    pending = sum(summary.dispatch.pending.values())
    assert pending > 0 and not summary.ok
    assert summary.notices[-1] == (
        f"Durée maximale d'un passage atteinte ({CEILING_S:g} s, réglage [agent] cycle_max_s) : {pending} "
        "message(s) restent à traiter et les dossiers non lus attendent ; le prochain passage reprend là où "
        "celui-ci s'est arrêté.")
    assert summary.notices[-1] in summary.render()
    assert p.live("accounts") == {}

    p.simulator.faults.clear()
    for _ in range(4):          # each cycle bounded too, each resuming where the last one stopped
        again = p.run()
        if again.ok:
            break

    assert again.ok and sum(again.dispatch.pending.values()) == 0, again.render()
    assert again.open_incidents == 0, again.render()
    tiers = p.sage(D, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0")
    assert set(p.live("accounts")) == {f"{D}:{num}" for (num,) in tiers}
