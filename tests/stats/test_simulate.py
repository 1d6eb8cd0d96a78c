"""The calibration's score model: the patient engine against the image-level one, and the
seed SD it is asked for against the one its runs show (issue 30)."""

from __future__ import annotations

import numpy as np
import pytest

from mlbench.leaderboard import calibrate as cal
from mlbench.stats import SparseRule, seedvar
from mlbench.stats import simulate as sim


@pytest.fixture(scope="module")
def sim_split():
    s = cal.sim_test_structure(3000, 0)  # the quickstart's test split (labels, patients)
    classes, _ = SparseRule().check(s.targets, s.groups)
    return sim.Split.of(s.targets[:, classes], s.groups, s.name)


def _moments(auc, psum):
    d = auc[:, 1] - auc[:, 0]  # (R, S) A/A differences
    vt, _ = seedvar.test_term(psum[:, 1] - psum[:, 0])
    return {"var_dbar": d.mean(-1).var(), "var_d": d.var(axis=0).mean(),
            "test": vt.mean(), "within": auc.var(axis=-1, ddof=1).mean()}


@pytest.mark.slow
def test_patient_engine_matches_the_full_engine(sim_split):
    """Same model, two engines: every image's score with the leaderboard's own influence
    values, or the per-patient sums drawn with their closed-form covariances."""
    model = sim.ScoreModel()
    pm = sim.patient_model(sim_split, model)
    design = sim.Design(2, 3, seed_sd=1.3 * np.sqrt(pm.floor()))
    full = _moments(*sim.draw_full(sim_split, model, design, 150, np.random.default_rng(0)))
    fast = _moments(*sim.draw_patient(sim_split, model, design, 4000, np.random.default_rng(1)))
    for key in full:  # 150 replicates: ~12% relative SE on a variance
        assert full[key] == pytest.approx(fast[key], rel=0.3), key
    # the closed form itself
    assert fast["test"] == pytest.approx(2 * pm.vu.sum(), rel=0.05)
    assert fast["within"] == pytest.approx(design.seed_sd**2, rel=0.05)


def test_closed_form_covariances_are_nested(sim_split):
    model = sim.ScoreModel()
    base = np.full(sim_split.targets.shape[1], model.auc)
    run = sim.patient_cov(sim_split, model, base, base, "run")
    loss = sim.patient_cov(sim_split, model, base, base, "loss")
    cross = sim.patient_cov(sim_split, model, base, base, "cross")
    assert np.all(run >= loss - 1e-15) and np.all(loss >= cross - 1e-15) and np.all(cross >= 0)
    assert sim.se_ratio(sim_split, model) > 1.0  # patients with several films


@pytest.mark.parametrize("spread", [(), (1.0, 3.0)])
def test_simulated_runs_reproduce_the_seed_sd_asked(sim_split, spread):
    """seed_sd is the SD over seeds of a run's mean AUC on the fixed split (issue 30: it came
    out 1.3-1.4x smaller than the SD the runs showed)."""
    s = cal.sim_test_structure(3000, 0)
    r = cal.simulate(s, cal.Scenario(3, 4, 0.012, spread, 0.5), replicates=600, power=False,
                     rules=["leaderboard"])
    np.testing.assert_allclose(r["sd_seen"], r["sd_asked"], rtol=0.05)
    with pytest.raises(ValueError, match="own test-set noise"):
        cal.simulate(s, cal.Scenario(3, 3, 0.001), replicates=2)


def test_per_loss_units_reproduce_the_paired_variance_unmoderated():
    """Per-loss units (``simulate.RULES["per-loss"]``): unmoderated (2 seeds, or moderation
    off) s_A^2 + s_B^2 - 2 r s_A s_B is the paired differences' own variance on S - 1 df;
    moderated it stays >= 0 and pulls a chance-small loss spread towards the others'."""
    rng = np.random.default_rng(3)
    for n_s, knobs in ((2, {}), (4, {"min_seeds": 99})):
        auc = rng.normal(0, 1, (50, 5, n_s)) + rng.normal(0, 1, (50, 1, n_s))  # correlated
        (v, d), (vm, dm) = sim.per_loss_terms(auc, **knobs)
        delta = auc[:, 1:] - auc[:, :1]
        np.testing.assert_allclose(v, delta.var(axis=-1, ddof=1), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(d, n_s - 1)
        np.testing.assert_allclose(vm, auc.var(axis=-1, ddof=1))
    auc = rng.normal(0, 1, (200, 6, 4))
    (v, d), (vm, dm) = sim.per_loss_terms(auc)
    own = auc.var(axis=-1, ddof=1)
    assert np.all(v >= 0) and np.all(d >= 3) and np.all(d <= dm[:, 1:])
    low = own.argmin(axis=-1)[:, None]  # each setup's smallest loss spread: pulled up
    assert np.all(np.take_along_axis(vm, low, -1) >= np.take_along_axis(own, low, -1))
    (vr, _), _ = sim.per_loss_terms(auc, pooled_r=True)  # one r per setup: still >= 0
    assert np.all(vr >= 0) and not np.allclose(vr, v)
