"""The champion rule on hand-made fold scores: paired standard errors, the simpler model within
the margin, and the recorded evidence."""

from __future__ import annotations

import pytest

from creditops.training.select import CandidateScores, choose_champion


def _scores(name: str, complexity: int, folds: list[float]) -> CandidateScores:
    return CandidateScores(name, name.upper(), complexity, folds, validation_auc=0.5)


def test_the_best_wins_when_it_is_clearly_better():
    selection = choose_champion(
        [
            _scores("lr", 1, [0.80, 0.81, 0.79, 0.80, 0.82]),
            _scores("xgb", 5, [0.83, 0.84, 0.82, 0.83, 0.85]),
        ]
    )
    assert selection.champion == selection.best_by_cv == "xgb"
    assert not selection.evidence("lr").within_rule
    assert selection.evidence("lr").gap == pytest.approx(0.03)
    assert "the highest of all candidates" in selection.reason


def test_a_simpler_model_within_one_paired_standard_error_wins():
    # xgb beats lr by 0.004 on average, but the per-fold differences swing ±0.01
    selection = choose_champion(
        [
            _scores("lr", 1, [0.80, 0.82, 0.79, 0.81, 0.80]),
            _scores("xgb", 5, [0.81, 0.81, 0.80, 0.80, 0.82]),
        ]
    )
    lr = selection.evidence("lr")
    assert selection.best_by_cv == "xgb"
    assert lr.gap == pytest.approx(0.004)
    assert lr.gap <= lr.gap_se
    assert selection.champion == "lr"
    assert "so the simpler model wins" in selection.reason
    assert selection.candidates[0].name == "xgb"  # sorted by CV AUC


def test_pairing_separates_a_consistent_small_gap_from_noise():
    # the folds differ a lot between them, but xgb is ahead by 0.004 on every one of them
    lr = [0.70, 0.85, 0.78, 0.90, 0.74]
    xgb = [v + 0.004 for v in lr]
    selection = choose_champion([_scores("lr", 1, lr), _scores("xgb", 5, xgb)])
    assert selection.champion == "xgb"
    assert selection.evidence("lr").gap_se == pytest.approx(0.0, abs=1e-12)


def test_zero_standard_errors_takes_the_best():
    scores = [
        _scores("lr", 1, [0.80, 0.82, 0.79, 0.81, 0.80]),
        _scores("xgb", 5, [0.81, 0.81, 0.80, 0.80, 0.82]),
    ]
    assert choose_champion(scores, se_multiple=0.0).champion == "xgb"
    assert "highest mean" in choose_champion(scores, se_multiple=0.0).rule


def test_among_eligible_the_lowest_complexity_wins_not_the_list_order():
    selection = choose_champion(
        [
            _scores("rf", 3, [0.810, 0.815, 0.805, 0.812, 0.808]),
            _scores("lr", 1, [0.809, 0.816, 0.804, 0.811, 0.809]),
            _scores("nn", 6, [0.811, 0.814, 0.806, 0.812, 0.809]),
        ]
    )
    assert selection.champion == "lr"


@pytest.mark.parametrize(
    "candidates",
    [
        [],
        [_scores("lr", 1, [0.8])],
        [_scores("lr", 1, [0.8, 0.8]), _scores("xgb", 2, [0.8, 0.8, 0.8])],
    ],
)
def test_unusable_fold_scores_are_refused(candidates):
    with pytest.raises(ValueError, match=r"candidates|fold AUCs"):
        choose_champion(candidates)


def test_the_evidence_round_trips_as_json():
    selection = choose_champion(
        [_scores("lr", 1, [0.80, 0.81, 0.79]), _scores("xgb", 5, [0.83, 0.84, 0.82])]
    )
    again = type(selection).model_validate_json(selection.model_dump_json())
    assert again == selection
    assert again.schema_version == 1


def test_a_confirmed_selection_keeps_the_screening_round():
    from creditops.training.select import confirmed

    screening = choose_champion(
        [
            _scores("lr", 1, [0.80, 0.82, 0.79, 0.81, 0.80]),
            _scores("nn", 6, [0.70, 0.71, 0.70, 0.69, 0.70]),
            _scores("xgb", 5, [0.81, 0.81, 0.80, 0.80, 0.82]),
        ]
    )
    assert screening.champion == "lr"
    assert screening.finalists() == ["xgb", "lr"]
    fresh = choose_champion(
        [
            _scores("lr", 1, [0.800, 0.801, 0.799, 0.800, 0.802] * 2),
            _scores("xgb", 5, [0.805, 0.806, 0.804, 0.805, 0.807] * 2),
        ]
    )
    final = confirmed(screening, fresh, repeats=2)
    assert final.champion == "xgb"
    assert final.screening == screening
    assert "new folds" in final.rule
    assert "new folds" in final.reason
    # a candidate left out of the second round is described by the first
    assert final.evidence("nn") == screening.evidence("nn")
    assert type(final).model_validate_json(final.model_dump_json()) == final
