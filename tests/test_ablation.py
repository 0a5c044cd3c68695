"""`bart-pretrain ablate`: a real tiny grid (2 recipes x 2 seeds at an equal target-token budget, a handful of steps of
a d_model=32 BART in a world made here) whose table rows come from the cells' own reports, with the budget measured
from the documents; a rerun skips finished cells, a killed fine-tune is redone and a killed pretraining resumes to
the uninterrupted result (the table's statistics on fake cells: test_ablation_results.py). The typed parser: --help,
-c, one-line errors naming the field; every shipped ablation config parses and its cells' command lines are accepted."""

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import bart_pretrain.cli
import bart_pretrain.commands.finetune
import bart_pretrain.commands.pretrain
from bart_pretrain.commands import ablate as ablation
from bart_pretrain.commands.ablate import main
from bart_pretrain.commands.ablation_config import (
    load_config,
)
from bart_pretrain.commands.ablation_results import kendall_tau
from bart_pretrain.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from pretrain_world import WORDS, make_world, summary_pairs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
BUDGET = 600  # target tokens per cell: 7 steps of the world's ~98 target tokens a step (16 batches an epoch)


def _pairs(n: int, offset: int) -> list[dict]:
    return summary_pairs(n, offset, WORDS, noun="module", extra=7)


def write_grid(root: Path, **fields) -> Path:
    """A tiny world, summarization pairs in its words, a fine-tune config and an ablation config over them."""
    pretrain = make_world(root / "world", checkpoint_every=2)
    pairs = root / "pairs"
    pairs.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", 40, 0), ("validation", 8, 100), ("test", 6, 200)):
        (pairs / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _pairs(n, offset)))
    finetune = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "check_val_every_n_epoch": None, "num_sanity_val_steps": 0,
                    "log_every_n_steps": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"optim": {"lr": 1e-3, "warmup_steps": 1}, "dropout": 0.0,
                  "generation": {"num_beams": 2, "max_length": 8, "min_length": 1}},
        "data": {"source": str(pairs), "max_tokens": 256, "metric_subset": 0, "num_workers": 0,
                 "max_source_length": 128},  # the tiny model's positions
    }  # fmt: skip
    (root / "finetune.yaml").write_text(yaml.safe_dump(finetune))
    config = {
        "pretrain_config": str(pretrain),
        "finetune_config": str(root / "finetune.yaml"),
        "recipes": ["configs/noise/token_deletion.yaml", "configs/noise/document_rotation.yaml"],
        "seeds": [5, 6],
        "pretrain_target_tokens": BUDGET,
        "budget_batches": 5,
        "finetune_steps": 3,
        "out_dir": str(root / "grid"),
        "pretrain_overrides": {"torch_threads": 1},
        "finetune_overrides": {"torch_threads": 1},
        **fields,
    }
    path = root / "ablation.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def ablate(argv: list[str]) -> int:
    """``bart-pretrain ablate ARGV`` in this process, as the dispatcher runs it: its exit status."""
    try:
        return bart_pretrain.cli.main(["ablate", *argv])
    except SystemExit as e:
        return int(e.code or 0)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    config = write_grid(root)
    assert main(["-c", str(config)]) == 0
    return config, root / "grid"


def _csv_val_loss(run_dir: Path) -> float:
    rows = [line.split(",") for line in (run_dir / "metrics.csv").read_text().splitlines()]
    column = rows[0].index("val/loss")
    return float([r for r in rows[1:] if r[column]][-1][column])


# --- the real tiny grid -------------------------------------------------------------------------------------
def test_the_budget_is_measured_from_the_documents_and_sets_each_cells_steps(grid):
    """Both recipes reconstruct the whole document, so a batch's target tokens are its documents' tokens: the
    measurement equals the epoch's document tokens over its planned batches, computed here without noise."""
    from bart_pretrain.data.batching import plan_batches
    from bart_pretrain.data.noise_config import load_noise
    from bart_pretrain.data.pretrain_dataset import document_lengths
    from bart_pretrain.data.pretrain_module import PretrainDataModule

    config, out = grid
    world = yaml.safe_load(Path(yaml.safe_load(config.read_text())["pretrain_config"]).read_text())["data"]
    module = PretrainDataModule(**{**world, "noise": load_noise(world["noise"]), "val_files": None})
    module.setup("fit")
    lengths = document_lengths(module.train_docs)
    expected = int(lengths.sum()) / len(plan_batches(lengths, world["max_tokens"], seed=0))
    budget = json.loads((out / "budget.json").read_text())
    assert set(budget) == {"token_deletion", "document_rotation"}
    steps = math.ceil(BUDGET / expected)
    for recipe, entry in budget.items():
        assert entry["target_tokens_per_step"] == pytest.approx(expected) and entry["batches_sampled"] == 5
        assert entry["document_tokens_per_step"] == pytest.approx(expected)
        for seed in (5, 6):
            report = json.loads((out / recipe / f"seed{seed}" / "pretrain" / "report.json").read_text())
            assert report["steps"] == steps
    summary = json.loads((out / "results.json").read_text())
    assert summary["budget"]["pretrain_target_tokens"] == BUDGET
    assert f"pretrained on {BUDGET:,} target tokens" in (out / "results.md").read_text()


def test_table_rows_are_the_cells_own_results_ranked_by_mean_finetune_perplexity(grid):
    _, out = grid
    ppl, learned = {}, {}
    for recipe in ("token_deletion", "document_rotation"):
        for seed in (5, 6):
            cell = out / recipe / f"seed{seed}"
            report = json.loads((cell / "pretrain" / "report.json").read_text())
            tuned = json.loads((cell / "finetune" / "metrics.json").read_text())["from_pretrained"]
            done = json.loads((cell / "done.json").read_text())
            rec = report["reconstruction"]
            assert tuned["steps"] == 3 and tuned["n"] == 6
            assert done["finetune_val_ppl"] == math.exp(_csv_val_loss(cell / "finetune" / "from_pretrained"))
            assert done["target_tokens_seen"] == report["tokens_seen"] > 0
            assert done["pretext"] == {"measure": "chrF", "model": rec["model"]["chrf"],
                                       "baseline": rec["copy_baseline"]["chrf"],
                                       "learned": rec["beats_copy_baseline"]}  # fmt: skip
            ppl.setdefault(recipe, []).append(done["finetune_val_ppl"])
            learned.setdefault(recipe, []).append(rec["beats_copy_baseline"])
    order = sorted(ppl, key=lambda r: sum(ppl[r]) / 2)
    summary = json.loads((out / "results.json").read_text())
    assert summary["cells_finished"] == summary["cells_total"] == 4
    assert [r["recipe"] for r in summary["rows"]] == order
    for row in summary["rows"]:
        values = ppl[row["recipe"]]
        assert row["finetune_val_ppl"]["mean"] == pytest.approx(sum(values) / 2)
        assert (row["finetune_val_ppl"]["min"], row["finetune_val_ppl"]["max"]) == (min(values), max(values))
        assert row["learned_seeds"] == sum(learned[row["recipe"]]) and row["judged_seeds"] == 2
    taus = {(5, 6): kendall_tau([ppl[r][0] for r in ppl], [ppl[r][1] for r in ppl])}
    assert summary["seed_agreement"]["pairs"] == [{"seeds": [5, 6], "recipes": 2, "kendall_tau": taus[(5, 6)]}]
    lines = (out / "results.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith(("| 1 |", "| 2 |"))]
    assert [row.split(" | ")[2] for row in rows] == order
    paper = {"token_deletion": "5.87", "document_rotation": "10.59"}
    assert all(f"| {paper[r]} (" in row for r, row in zip(order, rows, strict=True))
    assert "| 19.31 (1) |" in rows[order.index("token_deletion")]  # drop tokens, the T5 paper's best
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert len(csv_rows) == 3 and csv_rows[0].startswith("rank,tier,recipe,path,seeds,pretrain_steps")
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_cells(grid, monkeypatch, capsys):
    config, out = grid

    def refuse(argv):
        raise AssertionError(f"a finished cell ran again: {argv}")

    monkeypatch.setattr(bart_pretrain.commands.pretrain, "main", refuse)
    monkeypatch.setattr(bart_pretrain.commands.finetune, "main", refuse)
    monkeypatch.setattr(ablation, "check_overrides", lambda config: None)  # it parses through the real CLIs
    monkeypatch.setattr(ablation, "target_tokens_per_batch", refuse)  # budget.json holds the measurement
    before = (out / "results.md").read_text()
    assert main(["-c", str(config)]) == 0
    assert capsys.readouterr().out.count("finished earlier") == 4
    assert (out / "results.md").read_text() == before
    (out / "results.md").unlink()
    assert main(["-c", str(config), "--table_only", "true"]) == 0
    assert (out / "results.md").read_text() == before


def _spy(monkeypatch, module, calls):
    real = module.main

    def spy(argv):
        calls.append(argv)
        return real(argv)

    monkeypatch.setattr(module, "main", spy)


def _without_seconds(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "seconds"}


def test_a_killed_finetune_is_redone_without_pretraining_again(grid, monkeypatch):
    config, out = grid
    cell = out / "token_deletion" / "seed5"
    done = json.loads((cell / "done.json").read_text())
    (cell / "done.json").unlink()
    (cell / "finetune" / "metrics.json").unlink()  # killed during the test-split evaluation
    calls = {"pretrain": [], "finetune": []}
    _spy(monkeypatch, bart_pretrain.commands.pretrain, calls["pretrain"])
    _spy(monkeypatch, bart_pretrain.commands.finetune, calls["finetune"])
    assert main(["-c", str(config)]) == 0
    assert len(calls["finetune"]) == 2 and all("--print_config" in a for a in calls["pretrain"])  # 1 + the check
    assert _without_seconds(json.loads((cell / "done.json").read_text())) == _without_seconds(done)


def test_a_killed_pretraining_resumes_to_the_uninterrupted_result(grid, monkeypatch):
    config, out = grid
    cell = out / "document_rotation" / "seed6"
    done = json.loads((cell / "done.json").read_text())
    steps = done["pretrain_steps"]
    for stale in ("done.json", "finetune", "pretrain"):
        path = cell / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    real = bart_pretrain.commands.pretrain.main

    def killed_at_step_4(argv):  # the cell's schedule, stopped after step 4's checkpoint, as a kill would
        if "--print_config" not in argv:
            real([*argv, "--trainer.max_steps", "4", "--model.optim.total_steps", str(steps)])
            return 1
        return real(argv)

    monkeypatch.setattr(bart_pretrain.commands.pretrain, "main", killed_at_step_4)
    assert main(["-c", str(config)]) == 1
    assert not (cell / "done.json").exists() and (cell / "pretrain" / "checkpoints" / "last.ckpt").is_file()
    calls = []
    monkeypatch.setattr(bart_pretrain.commands.pretrain, "main", real)
    _spy(monkeypatch, bart_pretrain.commands.pretrain, calls)
    assert main(["-c", str(config)]) == 0
    assert calls[-1][-2:] == ["--ckpt_path", "last"]
    again = json.loads((cell / "done.json").read_text())
    assert again["pretrain_val_loss"] == pytest.approx(done["pretrain_val_loss"], abs=1e-6)
    assert again["recon_chrf"] == pytest.approx(done["recon_chrf"], abs=1e-6)
    assert again["target_tokens_seen"] == done["target_tokens_seen"]
    assert again["finetune_val_loss"] == pytest.approx(done["finetune_val_loss"], abs=1e-5)


def test_a_pretraining_killed_between_its_last_checkpoint_and_its_report_is_run_again(grid, capsys):
    config, out = grid
    cell = out / "token_deletion" / "seed6"
    done = json.loads((cell / "done.json").read_text())
    for stale in ("done.json", "pretrain/report.json"):
        (cell / stale).unlink()
    shutil.rmtree(cell / "finetune")
    assert main(["-c", str(config)]) == 0
    assert "had already finished but left no report; pretraining again" in capsys.readouterr().out
    assert _without_seconds(json.loads((cell / "done.json").read_text())) == _without_seconds(done)


def test_a_changed_budget_refuses_to_reuse_the_cells(grid, tmp_path, capsys):
    config, out = grid
    changed = yaml.safe_load(config.read_text()) | {"pretrain_target_tokens": 3 * BUDGET}
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    assert ablate(["-c", str(tmp_path / "changed.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was run with other pretrain settings" in err and "--out_dir" in err


def test_an_edited_recipe_refuses_to_reuse_the_cells(tmp_path, capsys):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text((CONFIGS / "noise" / "token_deletion.yaml").read_text())
    config = write_grid(tmp_path, recipes=[str(recipe)], pretrain_target_tokens=None, pretrain_steps=4)
    cell = ablation.cells(load_config(config))[0]
    (tmp_path / "grid" / "mine" / "seed5").mkdir(parents=True)
    (tmp_path / "grid" / "mine" / "seed5" / "cell.json").write_text(
        json.dumps(ablation.cell_settings(load_config(config), cell))
    )
    ablation.check_cells(load_config(config), ablation.cells(load_config(config)))  # the same settings: reusable
    recipe.write_text("# a comment changes nothing\n" + recipe.read_text())
    ablation.check_cells(load_config(config), ablation.cells(load_config(config)))
    recipe.write_text(recipe.read_text().replace("ratio: 0.15", "ratio: 0.2"))
    assert ablate(["-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"was run with another version of {cell.recipe.path} (its content changed since)" in err


# --- the budget ---------------------------------------------------------------------------------------------
def test_each_cells_steps_give_the_same_target_tokens(tmp_path):
    """A recipe with a quarter of the target tokens per step trains four times the steps; the curriculum takes the
    same share of every cell's steps."""
    base = {"pretrain_config": "configs/pretrain/tiny.yaml", "finetune_config": "configs/finetune/debian_tiny.yaml",
            "recipes": ["configs/noise/token_masking.yaml", "configs/noise/text_infilling.yaml"], "seeds": [1, 2],
            "pretrain_target_tokens": 1_000_000, "noise_schedule_share": 0.5, "finetune_steps": 2,
            "out_dir": str(tmp_path / "out")}  # fmt: skip
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(base))
    config = load_config(tmp_path / "a.yaml")
    budget = {"token_masking": {"steps": math.ceil(1_000_000 / 2000), "target_tokens_per_step": 2000.0},
              "text_infilling": {"steps": math.ceil(1_000_000 / 500), "target_tokens_per_step": 500.0}}  # fmt: skip
    grid = ablation.cells(config, budget)
    assert [(c.recipe.name, c.seed, c.steps) for c in grid] == [
        ("token_masking", 1, 500), ("token_masking", 2, 500), ("text_infilling", 1, 2000), ("text_infilling", 2, 2000)
    ]  # fmt: skip
    argv = ablation.pretrain_argv(config, grid[2])
    flags = dict(zip(argv[::2], argv[1::2], strict=True))
    assert (flags["--trainer.max_steps"], flags["--trainer.val_check_interval"]) == ("2000", "2000")
    assert flags["--data.noise_schedule.steps"] == "1000"
    assert ablation.ranks_per_step({"devices": 8, "accumulate_grad_batches": 4, "num_nodes": 2}) == 64
    assert ablation.ranks_per_step({"devices": [0, 1]}) == 2
    with pytest.raises(UserError, match=r"trainer.devices='auto'"):
        ablation.ranks_per_step({"devices": "auto"})


def _simulated(steps: int, full: float, identity: float, ramp: int, start: float) -> float:
    """Target tokens of ``steps`` steps, step by step, under a linear mix ramp (what the curriculum does)."""
    total = 0.0
    for t in range(steps):
        strength = start + (1 - start) * min(t / ramp, 1.0) if ramp else 1.0
        total += strength * full + (1 - strength) * identity
    return total


@pytest.mark.parametrize(("schedule", "share"), [(None, None), ({"steps": 300, "start": 0.0, "mode": "mix"}, None),
                                                 ({"steps": 300, "start": 0.2, "mode": "mix"}, 0.5),
                                                 ({"steps": 5000, "start": 0.0, "mode": "mix"}, None)])  # fmt: skip
def test_budget_steps_give_the_target_tokens_under_a_curriculum(schedule, share):
    """An objective with 500 target tokens a step at full strength on documents of 2,000: under a mix curriculum the
    samples left as they are carry the whole document, so the ramp's steps count more; step by step, the steps the
    budget gives reach the budget within one step's tokens."""
    steps, mean = ablation.budget_steps(1_000_000, 500.0, 2000.0, schedule, share)
    ramp = 0 if schedule is None else round(share * steps) if share else schedule["steps"]
    start = 0.0 if schedule is None else schedule["start"]
    seen = _simulated(steps, 500.0, 2000.0, ramp, start)
    assert 1_000_000 <= seen < 1_000_000 + 2000 and mean * steps == pytest.approx(seen)
    assert _simulated(steps - 1, 500.0, 2000.0, ramp, start) < 1_000_000 or share is not None
    if schedule is None:
        assert (steps, mean) == (2000, 500.0)
    assert ablation.budget_steps(1_000_000, 2000.0, 2000.0, schedule, share)[0] == 500  # the document: no change


# --- the parser ---------------------------------------------------------------------------------------------
def test_help_lists_every_field_typed(capsys):
    assert ablate(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # help wraps at the terminal's width
    for flag, kind in (("--pretrain_target_tokens", "PositiveInt | null"), ("--seeds", "list[NonNegativeInt]"),
                       ("--recipes", "list[str | RecipeEntry]"), ("--finetune_overrides", "dict[str, Any]"),
                       ("--table_only", "bool"), ("--noise_schedule_share", "float | null")):  # fmt: skip
        assert flag in out and f"type: {kind}" in out, flag
    assert "-c CONFIG, --config CONFIG" in out


def test_a_flag_overrides_the_config_file(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(_base(tmp_path)))
    assert load_config(path).seeds == (1, 2)
    from bart_pretrain.commands.ablation_config import parse

    config, table_only = parse(["-c", str(path), "--seeds", "[7]", "--out_dir", str(tmp_path / "y")])
    assert (config.seeds, config.out_dir, table_only) == ((7,), tmp_path / "y", False)


def _base(tmp_path: Path) -> dict:
    return {"pretrain_config": "configs/pretrain/tiny.yaml", "finetune_config": "configs/finetune/debian_tiny.yaml",
            "recipes": ["configs/noise/token_masking.yaml"], "seeds": [1, 2], "pretrain_steps": 2,
            "finetune_steps": 2, "out_dir": str(tmp_path / "out")}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"recipes": []}, "recipes=[]: the grid is empty"),
        ({"recipes": ["configs/noise/nope.yaml"]}, "recipes[0]='configs/noise/nope.yaml': no such file"),
        ({"recipes": ["configs/noise/token_masking.yaml", "configs/noise/token_masking.yaml"]},
         "recipes[1]: duplicate recipe name 'token_masking'"),
        ({"recipes": [{"path": "configs/noise/token_masking.yaml", "nmae": "x"}]}, 'Parser key "recipes"'),
        ({"seeds": [1, 1]}, "seeds=[1, 1]: duplicate seed"),
        ({"seeds": []}, "seeds=[]: must be a non-empty list"),
        ({"seeds": [-1]}, 'Parser key "seeds": Not of type NonNegativeInt: -1'),
        ({"pretrain_steps": 0}, 'Parser key "pretrain_steps"'),
        ({"pretrain_target_tokens": 100}, "pretrain_target_tokens=100, pretrain_steps=2: set exactly one"),
        ({"pretrain_steps": None}, "pretrain_target_tokens=None, pretrain_steps=None: set exactly one"),
        ({"noise_schedule_share": 1.5}, "noise_schedule_share=1.5: must be in (0, 1]"),
        ({"pretrain_overrides": {"trainer.max_steps": 5}}, "pretrain_overrides.trainer.max_steps: set by the harness"),
        ({"recipe": ["x"]}, "'recipe' is not accepted"),
        ({"finetune_config": "nowhere.yaml"}, "finetune_config='nowhere.yaml': no such file"),
    ],
)  # fmt: skip
def test_bad_configs_fail_in_one_line_naming_the_field_before_any_work(tmp_path, fields, message, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_base(tmp_path) | fields))
    assert ablate(["-c", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bart-pretrain ablate: error: ") and message in err, err
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match=None) as raised:
        load_config(path)
    assert message in str(raised.value)


def test_a_missing_config_file_and_a_bad_flag_fail_in_one_line(tmp_path, capsys):
    assert ablate(["-c", str(tmp_path / "nope.yaml")]) == 2
    assert f"-c {tmp_path / 'nope.yaml'}: no such file" in capsys.readouterr().err
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(_base(tmp_path)))
    assert ablate(["-c", str(path), "--finetune_steps", "many"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Parser key "finetune_steps"' in err and "--help" in err


def test_a_recipe_with_an_unknown_noise_fails_at_load(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("noises:\n  - class_path: no_such_noise\n")
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(_base(tmp_path) | {"recipes": [str(recipe)]}))
    with pytest.raises(UserError, match=r"recipes\[0\]=.*mine.yaml.*no_such_noise"):
        load_config(path)


def test_a_plugin_the_noise_curriculum_cannot_scale_fails_at_load(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugin_fixtures"))
    recipe = tmp_path / "every_third.yaml"  # a plug-in recipe by path; MaskEveryNth has no ratio/probability field
    recipe.write_text("noises:\n  - class_path: outside_noises.MaskEveryNth\n    init_args: {n: 3}\n")
    schedule = {"data.noise_schedule": {"steps": 10, "mode": "ratio"}}
    base = _base(tmp_path) | {"recipes": ["configs/noise/bart_large.yaml", str(recipe)], "pretrain_overrides": schedule}
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(UserError, match=r"recipes\[1\]=.*noise_schedule.mode='ratio'.*has no field ratio"):
        load_config(path)
    path.write_text(yaml.safe_dump(base | {"pretrain_overrides": {"data.noise_schedule.steps": 10,
                                                                  "data.noise_schedule.mode": "mix"}}))  # fmt: skip
    assert [(r.name, r.paper) for r in load_config(path).recipes][1] == ("every_third", None)


def test_a_misspelt_override_fails_before_any_cell(tmp_path, capsys):
    config = write_grid(tmp_path, finetune_overrides={"data.test_subest": 3})
    assert ablate(["-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "finetune_overrides" in err and "test_subest" in err
    assert not (tmp_path / "grid").exists()


def test_published_values_go_to_the_shipped_recipes_only(tmp_path):
    mine = tmp_path / "token_deletion.yaml"  # a user's recipe with a paper recipe's name is not the paper's
    mine.write_text((CONFIGS / "noise" / "token_masking.yaml").read_text())
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(_base(tmp_path) | {"recipes": ["configs/noise/token_masking.yaml",
                                                                   {"name": "mine", "path": str(mine)}]}))  # fmt: skip
    recipes = load_config(path).recipes
    assert [(r.name, r.paper, r.t5) for r in recipes] == [
        ("token_masking", ("Token Masking", 6.10), ("BERT-style", 19.17)), ("mine", None, None)
    ]  # fmt: skip


# --- the shipped configs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((CONFIGS / "ablation").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_ablation_configs_load_and_their_cells_parse(path, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(path, out_dir=str(tmp_path / "never-written"))
    assert len(config.seeds) >= 2
    if path.stem == "default":
        assert [r.paper is not None for r in config.recipes].count(True) == 6
        assert len(config.recipes) == 10 and config.pretrain_target_tokens is not None
    ablation.check_overrides(config)  # raises UserError naming the override the CLI rejects


def test_measured_target_tokens_are_the_same_for_the_same_seed(tmp_path):
    """The sample is a pure function of (documents, budget_seed, budget_batches): randomness as an argument."""
    pretrain = make_world(tmp_path / "world")
    data = yaml.safe_load(pretrain.read_text())["data"] | {"noise": "configs/noise/text_infilling.yaml"}
    first = ablation.target_tokens_per_batch(data, 4, seed=11)
    assert ablation.target_tokens_per_batch(data, 4, seed=11) == first and first[2] == 4
    assert np.isfinite(first[0]) and first[0] > 0 and first[1] > 0
