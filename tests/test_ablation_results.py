"""The ablation table's statistics (`commands/ablation_results`), on fake cells: spread over seeds, Kendall tau
between seeds, tiers that call only non-overlapping ranges, "did not learn", an objective's pretext scored against its
target, and rank correlations with the papers on known inputs."""

import math
from pathlib import Path

import pytest

from bart_pretrain.commands.ablation_config import T5_TABLE, AblationConfig, Recipe, paper_entry, published_entry
from bart_pretrain.commands.ablation_results import kendall_tau, markdown, spearman_rho, summarize, tiers

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

# --- the table's statistics, on fake cells ------------------------------------------------------------------
NOISE = CONFIGS / "noise"


def test_an_objectives_pretext_is_scored_against_its_target():
    from bart_pretrain.commands.ablation_results import pretext

    recon = {"model": {"chrf": 40.0, "bleu": 9.0}, "copy_baseline": {"chrf": 30.0, "bleu": 10.0},
             "beats_copy_baseline": False, "reference": "target"}  # fmt: skip
    assert pretext({"reconstruction": recon}) == {"measure": "target chrF", "model": 40.0, "baseline": 30.0,
                                                  "learned": False}  # fmt: skip
    assert pretext({"steps": 3})["learned"] is None


def _fake(recipe: str, seed: int, ppl: float, learned: bool | None = True) -> dict:
    pretext = {"measure": "chrF", "model": 60.0, "baseline": 50.0 if learned else 70.0, "learned": learned}
    return {"recipe": recipe, "seed": seed, "finetune_val_ppl": ppl, "pretrain_val_loss": 1.0, "recon_chrf": 60.0,
            "copy_chrf": 50.0, "rouge1": 30.0, "rouge2": 10.0, "rougeL": 25.0, "target_tokens_seen": 1000,
            "pretext": pretext if learned is not None else {"measure": None, "model": None, "baseline": None,
                                                            "learned": None},
            "seconds": {"pretrain": 1.0, "finetune": 1.0}}  # fmt: skip


def _fake_config(names: list[str], seeds: tuple[int, ...]) -> AblationConfig:
    recipes = tuple(Recipe(n, NOISE / f"{n}.yaml", paper_entry(NOISE / f"{n}.yaml"),
                           published_entry(NOISE / f"{n}.yaml", T5_TABLE)) for n in names)  # fmt: skip
    return AblationConfig(pretrain_config=CONFIGS / "pretrain" / "tiny.yaml",
                          finetune_config=CONFIGS / "finetune" / "debian_tiny.yaml", recipes=recipes, seeds=seeds,
                          finetune_steps=1, out_dir=Path("x"), pretrain_target_tokens=1000)  # fmt: skip


def test_spread_seed_agreement_tiers_and_pretext_on_fake_cells():
    # ppl per seed (1, 2, 3): deletion 5-6 and masking 5.5-7 overlap; infilling 8-9 is above both; rotation 12-20.
    cells = {"token_deletion": (5.0, 6.0, 5.5), "token_masking": (7.0, 5.5, 6.0), "text_infilling": (8.0, 9.0, 8.5),
             "document_rotation": (20.0, 12.0, 15.0)}  # fmt: skip
    learned = {"token_deletion": True, "token_masking": True, "text_infilling": False, "document_rotation": None}
    results = [_fake(r, s, ppl[k], learned[r]) for r, ppl in cells.items() for k, s in enumerate((1, 2, 3))]
    budget = {r: {"steps": 10 * (k + 1), "mean_target_tokens_per_step": 100.0 / (k + 1)} for k, r in enumerate(cells)}
    summary = summarize(_fake_config(list(cells), (1, 2, 3)), results, budget)
    rows = {r["recipe"]: r for r in summary["rows"]}
    assert [r["recipe"] for r in summary["rows"]] == ["token_deletion", "token_masking", "text_infilling",
                                                      "document_rotation"]  # fmt: skip
    assert rows["token_masking"]["finetune_val_ppl"] == pytest.approx(
        {"mean": 6.1666666, "std": math.sqrt(((7 - 37 / 6) ** 2 + (5.5 - 37 / 6) ** 2 + (6 - 37 / 6) ** 2) / 2),
         "min": 5.5, "max": 7.0})  # fmt: skip
    assert [rows[r]["tier"] for r in cells] == [1, 1, 2, 3]
    assert rows["token_deletion"]["not_separable_from"] == ["token_masking"]
    assert rows["text_infilling"]["not_separable_from"] == []
    # seeds 1 and 3 rank deletion < masking < infilling < rotation; seed 2 swaps the first two (masking 5.5 <
    # deletion 6.0): one pair of six disagrees, tau = (5 - 1) / 6.
    pairs = {tuple(p["seeds"]): p["kendall_tau"] for p in summary["seed_agreement"]["pairs"]}
    assert pairs == {(1, 2): pytest.approx(4 / 6), (1, 3): pytest.approx(1.0), (2, 3): pytest.approx(4 / 6)}
    assert summary["seed_agreement"]["mean_kendall_tau"] == pytest.approx((4 / 6 + 1 + 4 / 6) / 3)
    assert [(rows[r]["learned_seeds"], rows[r]["judged_seeds"]) for r in cells] == [(3, 3), (3, 3), (0, 3), (0, 0)]
    assert [rows[r]["pretrain_steps"] for r in cells] == [10, 20, 30, 40]
    # BART paper: deletion 5.87 (2), masking 6.10 (3), infilling 5.83 (1), rotation 10.59 (4); ours 1 2 3 4: the
    # pairs (deletion, infilling) and (masking, infilling) disagree, 4 of 6 agree: tau = 2 / 6.
    assert summary["agreement"]["kendall_tau"] == pytest.approx(kendall_tau([1, 2, 3, 4], [5.87, 6.10, 5.83, 10.59]))
    assert summary["agreement"]["kendall_tau"] == pytest.approx(2 / 6)
    # T5 paper: drop tokens 19.31 (1) and BERT-style 19.17 (2) map to deletion and masking: ours agrees.
    assert (rows["token_deletion"]["t5_rank"], rows["token_masking"]["t5_rank"]) == (1, 2)
    assert summary["t5_agreement"] == {"recipes": ["token_deletion", "token_masking"], "spearman_rho": 1.0,
                                       "kendall_tau": 1.0}  # fmt: skip
    text = markdown(summary)
    assert "Tiers: tier 1: token_deletion, token_masking; tier 2: text_infilling; tier 3: document_rotation." in text
    assert "| 1 | 1 | token_deletion | 3 | 10 | 100 | 1,000 | 5.50 (5.00-6.00) | token_masking |" in text
    assert (
        "| text_infilling | 3 | 30 | 33 | 1,000 | 8.50 (8.00-9.00) | none | chrF 60.0 vs 70.0 | **did not learn** |"
        in text
    )
    assert "| unknown |" in text  # document_rotation: its report had no pretext evaluation
    assert "objective): text_infilling." in text
    assert "seeds 1 and 2: 0.667 over 4; seeds 1 and 3: 1.000 over 4; seeds 2 and 3: 0.667 over 4; mean 0.778" in text
    assert "token_deletion ~ drop tokens, token_masking ~ BERT-style" in text
    assert "Kendall tau = 1.000 over 2 recipes (token_deletion, token_masking)" in text


def test_one_seed_gives_no_tiers_and_ties_share_a_tier():
    summary = summarize(_fake_config(["token_deletion", "token_masking"], (1,)),
                        [_fake("token_deletion", 1, 5.0), _fake("token_masking", 1, 9.0)])  # fmt: skip
    assert [r["tier"] for r in summary["rows"]] == [None, None]
    assert summary["seed_agreement"] == {"pairs": [], "mean_kendall_tau": None}
    assert "Tiers: none (needs two or more seeds per recipe)." in markdown(summary)
    # Ranges touching at one value overlap: no call.
    rows = [{"seeds": [1, 2], "finetune_val_ppl": {"mean": m, "min": lo, "max": hi}}
            for m, lo, hi in ((5.0, 4.0, 6.0), (7.0, 6.0, 8.0), (9.0, 8.5, 9.5))]  # fmt: skip
    assert tiers(rows) == [1, 1, 2]
    # A wide range above two separable neighbours joins them: 4-10 overlaps 8-9, so 6-7 and 8-9 share its tier.
    rows = [{"seeds": [1, 2], "finetune_val_ppl": {"mean": m, "min": lo, "max": hi}}
            for m, lo, hi in ((5.0, 4.0, 10.0), (6.5, 6.0, 7.0), (8.5, 8.0, 9.0))]  # fmt: skip
    assert tiers(rows) == [1, 1, 1]


def test_rank_correlations_on_known_inputs():
    # x = 1..5, y = 5 6 7 8 7: y ranks 1 2 3.5 5 3.5; rho = 8 / sqrt(10 * 9.5); tau-b: S = 8 - 1, ties 0 and 1 of 10
    # pairs: 7 / sqrt(10 * 9) (scipy: 0.8207826816681233 and 0.7378647873726218).
    x, y = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    assert spearman_rho(x, y) == pytest.approx(8 / math.sqrt(95))
    assert spearman_rho(x, y) == pytest.approx(0.8207826816681233)
    assert kendall_tau(x, y) == pytest.approx(7 / math.sqrt(90))
    assert kendall_tau(x, y) == pytest.approx(0.7378647873726218)
    assert spearman_rho(x, x[::-1]) == pytest.approx(-1.0) and kendall_tau(x, x[::-1]) == pytest.approx(-1.0)
    paper = [5.41, 5.83, 5.87, 6.10, 7.89, 10.59]
    assert spearman_rho(paper, [1, 2, 3, 4, 6, 5]) == pytest.approx(1 - 6 * 2 / (6 * 35))
    assert kendall_tau(paper, [1, 2, 3, 4, 6, 5]) == pytest.approx(13 / 15)
    assert spearman_rho([1.0], [2.0]) is None and spearman_rho([1, 2], [3, 3]) is None
