"""`bart-pretrain ablate` on a tiny grid (2 recipes x 1 seed, 8 pretraining and 3 fine-tuning steps of a d_model=32
BART in a world made here): the table's rows come from the cells' own reports, a rerun skips finished cells, a
killed fine-tune is redone and a killed pretraining resumes to the uninterrupted result; bad configs fail naming the
field; the rank correlations on known inputs; every shipped ablation config loads and its cells parse."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import yaml

import bart_pretrain.commands.finetune
import bart_pretrain.commands.pretrain
from bart_pretrain.commands import ablate as ablation
from bart_pretrain.commands.ablate import main
from bart_pretrain.commands.ablation_config import load_config
from bart_pretrain.commands.ablation_results import kendall_tau, spearman_rho

sys.path.insert(0, str(Path(__file__).parent))
from pretrain_world import WORDS, make_world, summary_pairs  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


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
        "seeds": [5],
        "pretrain_steps": 8,
        "finetune_steps": 3,
        "out_dir": str(root / "grid"),
        **fields,
    }
    path = root / "ablation.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


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


def test_table_rows_are_the_cells_own_results_ranked_by_finetune_perplexity(grid):
    _, out = grid
    expected = {}
    for recipe in ("token_deletion", "document_rotation"):
        cell = out / recipe / "seed5"
        report = json.loads((cell / "pretrain" / "report.json").read_text())
        tuned = json.loads((cell / "finetune" / "metrics.json").read_text())["from_pretrained"]
        ppl = math.exp(_csv_val_loss(cell / "finetune" / "from_pretrained"))
        assert report["steps"] == 8 and tuned["steps"] == 3 and tuned["n"] == 6
        rec = report["reconstruction"]
        expected[recipe] = (ppl, f" {recipe} | 1 | {report['val_loss_last']:.3f} | {rec['model']['chrf']:.1f} "
                                 f"| {rec['copy_baseline']['chrf']:.1f} | {ppl:.2f} | {tuned['rouge1']:.2f} "
                                 f"| {tuned['rouge2']:.2f} | {tuned['rougeL']:.2f} |")  # fmt: skip
    paper = {"token_deletion": "5.87", "document_rotation": "10.59"}
    order = sorted(expected, key=lambda r: expected[r][0])
    lines = (out / "results.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert rows == [f"| {k} |{expected[r][1]} {paper[r]} | {1 if r == 'token_deletion' else 2} |"
                    for k, r in enumerate(order, 1)]  # fmt: skip
    rho = 1.0 if order[0] == "token_deletion" else -1.0
    agreement = next(line for line in lines if line.startswith("Rank agreement"))
    assert f"Spearman rho = {rho:.3f}, Kendall tau = {rho:.3f} over 2 recipes" in agreement
    assert "CNN/DM perplexity" in (out / "results.md").read_text()
    summary = json.loads((out / "results.json").read_text())
    assert summary["cells_finished"] == summary["cells_total"] == 2
    assert [(c["pretrain_val_step"], c["finetune_val_step"]) for c in summary["cells"]] == [(8, 3), (8, 3)]  # the end
    assert [r["recipe"] for r in summary["rows"]] == order
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert len(csv_rows) == 3 and csv_rows[0].startswith("rank,recipe,path,seeds,pretrain_val_loss_mean")
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_cells(grid, monkeypatch, capsys):
    config, out = grid

    def refuse(argv):
        raise AssertionError(f"a finished cell ran again: {argv}")

    monkeypatch.setattr(bart_pretrain.commands.pretrain, "main", refuse)
    monkeypatch.setattr(bart_pretrain.commands.finetune, "main", refuse)
    monkeypatch.setattr(ablation, "check_overrides", lambda config: None)  # it parses through the real CLIs
    before = (out / "results.md").read_text()
    assert main(["-c", str(config)]) == 0
    assert capsys.readouterr().out.count("finished earlier") == 2
    assert (out / "results.md").read_text() == before
    (out / "results.md").unlink()
    assert main(["-c", str(config), "--table_only"]) == 0
    assert (out / "results.md").read_text() == before


def _spy(monkeypatch, module, calls):
    real = module.main

    def spy(argv):
        calls.append(argv)
        return real(argv)

    monkeypatch.setattr(module, "main", spy)


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
    again = json.loads((cell / "done.json").read_text())
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in done.items() if k != "seconds"}


def test_a_killed_pretraining_resumes_to_the_uninterrupted_result(grid, monkeypatch):
    config, out = grid
    cell = out / "document_rotation" / "seed5"
    done = json.loads((cell / "done.json").read_text())
    for stale in ("done.json", "finetune", "pretrain"):
        path = cell / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    real = bart_pretrain.commands.pretrain.main

    def killed_at_step_4(argv):  # the 8-step schedule, stopped after step 4's checkpoint, as a kill would
        if "--print_config" not in argv:
            real([*argv, "--trainer.max_steps", "4", "--model.optim.total_steps", "8"])
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
    assert again["finetune_val_loss"] == pytest.approx(done["finetune_val_loss"], abs=1e-5)


def test_a_changed_budget_refuses_to_reuse_the_cells(grid, tmp_path, capsys):
    config, out = grid
    changed = yaml.safe_load(config.read_text()) | {"pretrain_steps": 9}
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    assert main(["-c", str(tmp_path / "changed.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was run with other pretrain settings" in err and "--out_dir" in err


def test_an_edited_recipe_refuses_to_reuse_the_cells(tmp_path, capsys):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text((CONFIGS / "noise" / "token_deletion.yaml").read_text())
    config = write_grid(tmp_path, recipes=[str(recipe)])
    cell = load_config(config).recipes[0]
    settings = ablation.cell_settings(load_config(config), ablation.cells(load_config(config))[0])
    (tmp_path / "grid" / "mine" / "seed5").mkdir(parents=True)
    (tmp_path / "grid" / "mine" / "seed5" / "cell.json").write_text(json.dumps(settings))
    ablation.check_cells(load_config(config))  # the same settings: reusable
    recipe.write_text("# a comment changes nothing\n" + recipe.read_text())
    ablation.check_cells(load_config(config))
    recipe.write_text(recipe.read_text().replace("ratio: 0.15", "ratio: 0.2"))
    assert main(["-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"was run with another version of {cell.path} (its content changed since)" in err


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"recipes": []}, "recipes=[]: the grid is empty"),
        ({"recipes": ["configs/noise/nope.yaml"]}, "recipes[0]='configs/noise/nope.yaml': no such file"),
        ({"recipes": ["configs/noise/token_masking.yaml", "configs/noise/token_masking.yaml"]},
         "recipes[1]: duplicate recipe name 'token_masking'"),
        ({"seeds": [1, 1]}, "seeds=[1, 1]: duplicate seed"),
        ({"seeds": []}, "seeds=[]: must be a non-empty list"),
        ({"pretrain_steps": 0}, "pretrain_steps=0: must be a positive integer"),
        ({"pretrain_overrides": {"trainer.max_steps": 5}}, "pretrain_overrides.trainer.max_steps: set by the harness"),
        ({"recipe": ["x"]}, "unknown field 'recipe'; allowed: pretrain_config"),
        ({"finetune_config": "nowhere.yaml"}, "finetune_config='nowhere.yaml': no such file"),
    ],
)  # fmt: skip
def test_bad_configs_fail_in_one_line_naming_the_field_before_any_work(tmp_path, fields, message, capsys):
    path = tmp_path / "bad.yaml"
    base = {"pretrain_config": "configs/pretrain/tiny.yaml", "finetune_config": "configs/finetune/debian_tiny.yaml",
            "recipes": ["configs/noise/token_masking.yaml"], "seeds": [1], "pretrain_steps": 2, "finetune_steps": 2,
            "out_dir": str(tmp_path / "out")}  # fmt: skip
    path.write_text(yaml.safe_dump(base | fields))
    assert main(["-c", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_recipe_with_an_unknown_noise_fails_at_load(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("noises:\n  - class_path: no_such_noise\n")
    base = {"pretrain_config": "configs/pretrain/tiny.yaml", "finetune_config": "configs/finetune/debian_tiny.yaml",
            "recipes": [str(recipe)], "seeds": [1], "pretrain_steps": 2, "finetune_steps": 2,
            "out_dir": "x"}  # fmt: skip
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ValueError, match=r"recipes\[0\]=.*mine.yaml.*no_such_noise"):
        load_config(path)


def test_a_plugin_the_noise_curriculum_cannot_scale_fails_at_load(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugin_fixtures"))
    recipe = tmp_path / "every_third.yaml"  # a plug-in recipe by path; MaskEveryNth has no ratio/probability field
    recipe.write_text("noises:\n  - class_path: outside_noises.MaskEveryNth\n    init_args: {n: 3}\n")
    base = {"pretrain_config": "configs/pretrain/tiny.yaml", "finetune_config": "configs/finetune/debian_tiny.yaml",
            "recipes": ["configs/noise/bart_large.yaml", str(recipe)],
            "seeds": [1], "pretrain_steps": 2, "finetune_steps": 2, "out_dir": "x",
            "pretrain_overrides": {"data.noise_schedule": {"steps": 10, "mode": "ratio"}}}  # fmt: skip
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ValueError, match=r"recipes\[1\]=.*noise_schedule.mode='ratio'.*has no field ratio"):
        load_config(path)
    path.write_text(yaml.safe_dump(base | {"pretrain_overrides": {"data.noise_schedule.steps": 10,
                                                                  "data.noise_schedule.mode": "mix"}}))  # fmt: skip
    assert [(r.name, r.paper) for r in load_config(path).recipes][1] == ("every_third", None)


def test_a_misspelt_override_fails_before_any_cell(tmp_path, capsys):
    config = write_grid(tmp_path, finetune_overrides={"data.test_subest": 3})
    assert main(["-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "finetune_overrides" in err and "test_subest" in err
    assert not (tmp_path / "grid").exists()


def test_paper_values_go_to_the_shipped_recipes_only(tmp_path):
    mine = tmp_path / "text_infilling.yaml"  # a user's recipe with a paper recipe's name is not the paper's
    mine.write_text((CONFIGS / "noise" / "token_deletion.yaml").read_text())
    base = {"pretrain_config": "configs/pretrain/tiny.yaml", "finetune_config": "configs/finetune/debian_tiny.yaml",
            "recipes": ["configs/noise/bart_large.yaml", {"name": "mine", "path": str(mine)}], "seeds": [1],
            "pretrain_steps": 2, "finetune_steps": 2, "out_dir": "x"}  # fmt: skip
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(base))
    recipes = load_config(path).recipes
    assert [(r.name, r.paper) for r in recipes] == [("bart_large", ("Text Infilling + Sentence Shuffling", 5.41)),
                                                    ("mine", None)]  # fmt: skip


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


@pytest.mark.parametrize("path", sorted((CONFIGS / "ablation").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_ablation_configs_load_and_their_cells_parse(path, monkeypatch):
    monkeypatch.chdir(tmp := Path(__file__).resolve().parent.parent)
    config = load_config(path, out_dir=str(tmp / "runs" / "never-written"))
    assert len(config.recipes) >= 6 and [r.paper is not None for r in config.recipes].count(True) == 6
    ablation.check_overrides(config)  # raises ValueError naming the override the CLI rejects


def test_a_pretraining_killed_between_its_last_checkpoint_and_its_report_is_run_again(grid, capsys):
    config, out = grid
    cell = out / "token_deletion" / "seed5"
    done = json.loads((cell / "done.json").read_text())
    for stale in ("done.json", "pretrain/report.json"):
        (cell / stale).unlink()
    shutil.rmtree(cell / "finetune")
    assert main(["-c", str(config)]) == 0
    assert "had already finished but left no report; pretraining again" in capsys.readouterr().out
    again = json.loads((cell / "done.json").read_text())
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in done.items() if k != "seconds"}
