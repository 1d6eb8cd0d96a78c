"""tools.masked_agreement and tools.ranking_transfer run and report (tiny sizes)."""

from tools import masked_agreement, ranking_transfer


def test_masked_agreement_reports_each_path(capsys):
    assert masked_agreement.main(["--patients", "40", "--per", "3", "--classes", "3",
                                  "--boot", "20"]) == 0
    out = capsys.readouterr().out
    for what in ("per-class AUC", "influence", "bootstrap", "LRAP", "clustered DeLong"):
        assert what in out


def test_ranking_transfer_reports_each_scenario(capsys):
    assert ranking_transfer.main(["--sims", "2", "--boot", "10", "--patients", "30",
                                  "--scenarios", "null", "same"]) == 0
    out = capsys.readouterr().out
    assert "null" in out and "same" in out and "coverage" in out
