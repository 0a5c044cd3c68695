"""The `bart-pretrain ablate` config: a jsonargparse parser (typed fields, ``-c`` files, ``--help``, LightningCLI's
underscore spelling) for recipes (shipped, the user's own, plug-ins) x seeds at an equal budget, checked in one pass
before any work, each error one line naming the field, the value and what is allowed; and the published rankings the
shipped recipes are compared with (the BART paper's Table 1, the T5 paper's objective comparison)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from jsonargparse.typing import NonNegativeInt, PositiveInt

from bart_pretrain.errors import UserError, debugging, usage_error
from bart_pretrain.paths import REPO, resolve_input, where_looked

PROG = "bart-pretrain ablate"
DESCRIPTION = (
    "Which corruption is best? Pretrain and fine-tune one cell per recipe x seed at an equal target-token budget, "
    "then rank the recipes by fine-tune validation perplexity with their spread over seeds, the seeds' rank "
    "agreement, the differences the seeds can separate, whether each cell learned its pretext, and the BART and T5 "
    "papers' rankings beside. A rerun resumes; `-c configs/ablation/quick.yaml` is a first look."
)

PAPER_TABLE1: dict[str, tuple[str, float]] = {
    "bart_large": ("Text Infilling + Sentence Shuffling", 5.41),
    "text_infilling": ("Text Infilling", 5.83),
    "token_deletion": ("Token Deletion", 5.87),
    "token_masking": ("Token Masking", 6.10),
    "sentence_permutation": ("Sentence Shuffling", 7.89),
    "document_rotation": ("Document Rotation", 10.59),
}
"""Shipped recipe (configs/noise/<name>.yaml) -> (its row in the BART paper's Table 1, the CNN/DM perplexity of that
base-size model fine-tuned for summarization). Lower is better."""

PAPER_SOURCE = "BART paper (Lewis et al. 2020), Table 1: CNN/DM perplexity of base-size models, lower is better"

T5_TABLE: dict[str, tuple[str, float]] = {
    "token_deletion": ("drop tokens", 19.31),
    "t5_spans": ("replace corrupted spans", 19.24),
    "token_masking": ("BERT-style", 19.17),
    "prefix_lm": ("prefix language modeling", 18.94),
    "sentence_permutation": ("deshuffling", 18.59),
}
"""Shipped recipe -> (the T5 paper's objective it corresponds to, that objective's CNN/DM ROUGE-2 at T5-base).
Higher is better. Our recipes are the nearest counterparts, not the same objectives (T5 deshuffles tokens, we
permute sentences; T5's BERT-style also swaps in random tokens)."""

T5_SOURCE = "T5 paper (Raffel et al. 2020), Tables 4 and 5: CNN/DM ROUGE-2 of T5-base per objective, higher is better"
T5_NO_PRETRAINING = 17.60
"""The T5 paper's CNN/DM ROUGE-2 of the same model without pretraining (Table 1 of that paper)."""

RESERVED_PRETRAIN = ("run_dir", "data.noise", "seed_everything", "data.seed", "trainer.max_steps", "trainer.max_time",
                     "ckpt_path", "report", "trainer.logger")  # fmt: skip
RESERVED_FINETUNE = ("model.init_from", "trainer.default_root_dir", "seed_everything", "trainer.max_steps",
                     "trainer.max_time", "compare_scratch", "evaluate_test", "trainer.logger")  # fmt: skip
"""Overrides the harness sets itself (the recipe, seed, budget and where each stage writes): a user value would break
the equal-budget comparison or the resume logic."""


@dataclass
class RecipeEntry:
    """A recipe with a name of its own (the cell directory's name), for two recipe files of one file name."""

    path: str
    """the recipe YAML (configs/noise/x.yaml, your own)"""
    name: str | None = None
    """the cells' directory name (null: the file's stem)"""


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    paper: tuple[str, float] | None = None
    """(BART Table 1 row, CNN/DM perplexity) when this is one of the shipped recipes the paper ablates."""
    t5: tuple[str, float] | None = None
    """(T5 objective, CNN/DM ROUGE-2) when this shipped recipe corresponds to one the T5 paper compares."""


@dataclass(frozen=True)
class AblationConfig:
    pretrain_config: Path
    finetune_config: Path
    recipes: tuple[Recipe, ...]
    seeds: tuple[int, ...]
    finetune_steps: int
    out_dir: Path
    pretrain_target_tokens: int | None = None
    pretrain_steps: int | None = None
    budget_batches: int = 200
    budget_seed: int = 0
    noise_schedule_share: float | None = None
    pretrain_overrides: dict[str, Any] = field(default_factory=dict)
    finetune_overrides: dict[str, Any] = field(default_factory=dict)


# --- the parser ---------------------------------------------------------------------------------------------
class AblationParser(ArgumentParser):
    """jsonargparse's parser with a bad command line or config file said in one line (``errors.usage_error``), or
    raised as :class:`UserError` when built with ``exit_on_error=False`` (:func:`load_config`)."""

    def error(self, message: str, ex: Exception | None = None):
        if debugging():
            super().error(message, ex)
        if not self.exit_on_error:
            raise UserError(" ".join(part.strip() for part in str(message).splitlines() if part.strip()))
        usage_error(self.prog, message)


def parser(exit_on_error: bool = True) -> AblationParser:
    """Every field of an ablation config, typed, as ``--field`` flags and ``-c`` YAML keys."""
    p = AblationParser(prog=PROG, description=DESCRIPTION, default_env=False, exit_on_error=exit_on_error)
    p.add_argument("-c", "--config", action=ActionConfigFile, help="an ablation YAML (configs/ablation/*.yaml)")
    p.add_argument(
        "--pretrain_config",
        type=str,
        required=True,
        help="the base `bart-pretrain pretrain` config every cell starts from",
    )
    p.add_argument(
        "--finetune_config",
        type=str,
        required=True,
        help="the base `bart-pretrain finetune` config every cell's fine-tune starts from",
    )
    p.add_argument(
        "--recipes",
        type=list[str | RecipeEntry],
        required=True,
        help="noise recipes / objectives: a path (configs/noise/x.yaml, your own YAML) or {name, path}",
    )
    p.add_argument(
        "--seeds",
        type=list[NonNegativeInt],
        default=[1234, 1235],
        help="distinct seeds; cells = recipes x seeds (two or more give the spread and the calls)",
    )
    p.add_argument(
        "--pretrain_target_tokens",
        type=PositiveInt | None,
        default=None,
        help="the equal budget: target tokens every cell's pretraining trains on; each recipe's steps = "
        "this / its measured target tokens per step (one of this and pretrain_steps)",
    )
    p.add_argument(
        "--pretrain_steps",
        type=PositiveInt | None,
        default=None,
        help="the budget in optimizer steps instead, the same for every cell (objectives with short "
        "targets then see fewer target tokens); one of this and pretrain_target_tokens",
    )
    p.add_argument(
        "--budget_batches",
        type=PositiveInt,
        default=200,
        help="training batches sampled to measure each recipe's target tokens per step",
    )
    p.add_argument(
        "--budget_seed",
        type=NonNegativeInt,
        default=0,
        help="seed of that sample (which batches, and their corruption)",
    )
    p.add_argument(
        "--noise_schedule_share",
        type=float | None,
        default=None,
        help="the pretraining's noise curriculum over this share of each cell's steps (sets "
        "data.noise_schedule.steps per cell; null: as the base config and overrides say)",
    )
    p.add_argument(
        "--finetune_steps",
        type=PositiveInt,
        required=True,
        help="optimizer steps of every fine-tune (the equal budget)",
    )
    p.add_argument("--out_dir", type=str, required=True, help="where the cells and the results go")
    p.add_argument(
        "--pretrain_overrides",
        type=dict[str, Any],
        default={},
        help="dotted overrides for every pretraining, e.g. {data.max_tokens: 2048}",
    )
    p.add_argument(
        "--finetune_overrides",
        type=dict[str, Any],
        default={},
        help="dotted overrides for every fine-tune, e.g. {data.test_subset: 300}",
    )
    p.add_argument(
        "--table_only", type=bool, default=False, help="write the results from the finished cells; run nothing"
    )
    return p


def config_files(argv: Sequence[str]) -> list[str]:
    """``argv`` with each ``-c`` file found as input paths are found (a shipped ``configs/ablation/x.yaml`` from any
    directory); a ``-c`` value naming no file, but shaped like a file name, is refused naming where it was looked
    for (jsonargparse would read the name itself as YAML)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("-c", "--config") and (eq or i + 1 < len(argv)):
            if not eq:
                i += 1
                value = argv[i]
            found = resolve_input(value)
            if not Path(found).is_file() and value.endswith((".yaml", ".yml", ".json")):
                raise UserError(f"-c {value}: no such file ({where_looked(value)})")
            out += [name, found]
        else:
            out.append(arg)
        i += 1
    return out


def config_origin(argv: Sequence[str], key: str) -> Path | None:
    """The ``-c`` file that sets ``key`` last in ``argv`` (its relative paths are found from there), or None when the
    command line sets it last or nothing does (found from the working directory)."""
    origin, i = None, 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in ("-c", "--config"):
            value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            path = Path(value)
            if path.is_file():
                tree = yaml.safe_load(path.read_text(encoding="utf-8"))
                if isinstance(tree, Mapping) and key in tree:
                    origin = path.absolute()
        elif name == f"--{key}" or name.startswith(f"--{key}+"):
            origin = None
        i += 1
    return origin


# --- checks after parsing -----------------------------------------------------------------------------------
def _input_path(value: str, name: str, origin: Path | None) -> Path:
    if not value:
        raise UserError(f"{name}={value!r}: must be a path to a YAML file")
    path = Path(resolve_input(value, origin))
    if not path.is_file():
        raise UserError(f"{name}={value!r}: no such file ({where_looked(value, origin)})")
    return path.resolve()


def _overrides(value: Mapping[str, Any], name: str, reserved: Sequence[str]) -> dict[str, Any]:
    for key in value:
        if key.removeprefix("--") in reserved:
            raise UserError(
                f"{name}.{key}: set by the harness for every cell (reserved: {', '.join(reserved)}); use "
                "pretrain_target_tokens/pretrain_steps/finetune_steps/seeds/recipes/out_dir"
            )
    return {k.removeprefix("--"): v for k, v in value.items()}


def published_entry(path: Path, table: Mapping[str, tuple[str, float]]) -> tuple[str, float] | None:
    """The published row of a shipped recipe (by file, not by name: a user's text_infilling.yaml has none)."""
    shipped_file = REPO / "configs" / "noise" / f"{path.stem}.yaml"
    if path.stem in table and shipped_file.is_file() and shipped_file.resolve() == path.resolve():
        return table[path.stem]
    return None


def paper_entry(path: Path) -> tuple[str, float] | None:
    """The BART paper's Table 1 row of a shipped recipe."""
    return published_entry(path, PAPER_TABLE1)


def _recipes(value: Sequence[Any], origin: Path | None) -> tuple[Recipe, ...]:
    from bart_pretrain.data.noise_config import load_noise

    if not value:
        raise UserError(
            "recipes=[]: the grid is empty; list at least one noise recipe (a path such as "
            "configs/noise/text_infilling.yaml, or {name: ..., path: ...})"
        )
    recipes: list[Recipe] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(value):
        where = f"recipes[{i}]"
        name, raw = (item.name, item.path) if isinstance(item, (Namespace, RecipeEntry)) else (None, item)
        path = _input_path(raw, where, origin)
        name = path.stem if name is None else name
        if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
            raise UserError(f"{where}.name={name!r}: must be a non-empty name of letters, digits, _-.")
        if name in seen:
            raise UserError(
                f"{where}: duplicate recipe name {name!r} ({seen[name]} and {raw}); names are the cells' "
                "directories: give one a `name:` ({name: other, path: ...})"
            )
        seen[name] = str(raw)
        try:
            load_noise(path)  # an unknown noise, a bad field or a missing plug-in fails now, not after an hour
        except (ValueError, TypeError, ImportError) as e:
            raise UserError(f"{where}={raw!r}: {e}") from e
        recipes.append(Recipe(name, path, paper_entry(path), published_entry(path, T5_TABLE)))
    return tuple(recipes)


def noise_schedule(pretrain_config: Path, overrides: Mapping[str, Any]):
    """The pretraining's ``data.noise_schedule`` (base config, then overrides) as a :class:`noising.NoiseSchedule`,
    or None."""
    from noising.schedule import NoiseSchedule

    data = (yaml.safe_load(pretrain_config.read_text(encoding="utf-8")) or {}).get("data") or {}
    fields = dict(overrides.get("data.noise_schedule", data.get("noise_schedule")) or {})
    fields |= {k.removeprefix("data.noise_schedule."): v for k, v in overrides.items()
               if k.startswith("data.noise_schedule.")}  # fmt: skip
    return NoiseSchedule(**fields) if fields else None


def check_schedule(config: AblationConfig) -> None:
    """A curriculum that scales each noise's ``ratio``/``probability`` cannot scale a plug-in without one: say so now,
    not when that recipe's cell starts."""
    from bart_pretrain.data.noise_config import load_noise

    schedule = noise_schedule(config.pretrain_config, config.pretrain_overrides)
    if schedule is None:
        return
    for i, recipe in enumerate(config.recipes):
        try:
            schedule.check(load_noise(recipe.path))
        except ValueError as e:
            raise UserError(
                f"recipes[{i}]={str(recipe.path)!r} under the pretraining's data.{e}; e.g. "
                "pretrain_overrides: {data.noise_schedule.mode: mix}"
            ) from None


def from_namespace(ns: Namespace, argv: Sequence[str]) -> AblationConfig:
    """The checked config of a parsed command line (``argv``: what it was parsed from, to find relative paths)."""
    seeds = list(ns.seeds)
    if not seeds:
        raise UserError("seeds=[]: must be a non-empty list of integers >= 0, e.g. [1234, 1235]")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds={seeds!r}: duplicate seed; each seed must appear once")
    if (ns.pretrain_target_tokens is None) == (ns.pretrain_steps is None):
        raise UserError(
            f"pretrain_target_tokens={ns.pretrain_target_tokens!r}, pretrain_steps={ns.pretrain_steps!r}: set "
            "exactly one (target tokens: the same for every cell, the equal budget; steps: the same steps)"
        )
    share = ns.noise_schedule_share
    if share is not None and not 0.0 < share <= 1.0:
        raise UserError(f"noise_schedule_share={share!r}: must be in (0, 1] (or null)")
    if not ns.out_dir:
        raise UserError(f"out_dir={ns.out_dir!r}: must be a directory path")
    reserved = RESERVED_PRETRAIN + (("data.noise_schedule.steps",) if share is not None else ())
    config = AblationConfig(
        pretrain_config=_input_path(ns.pretrain_config, "pretrain_config", config_origin(argv, "pretrain_config")),
        finetune_config=_input_path(ns.finetune_config, "finetune_config", config_origin(argv, "finetune_config")),
        recipes=_recipes(ns.recipes, config_origin(argv, "recipes")),
        seeds=tuple(seeds),
        finetune_steps=ns.finetune_steps,
        out_dir=Path(ns.out_dir),
        pretrain_target_tokens=ns.pretrain_target_tokens,
        pretrain_steps=ns.pretrain_steps,
        budget_batches=ns.budget_batches,
        budget_seed=ns.budget_seed,
        noise_schedule_share=share,
        pretrain_overrides=_overrides(ns.pretrain_overrides, "pretrain_overrides", reserved),
        finetune_overrides=_overrides(ns.finetune_overrides, "finetune_overrides", RESERVED_FINETUNE),
    )
    if share is not None and noise_schedule(config.pretrain_config, config.pretrain_overrides) is None:
        raise UserError(
            f"noise_schedule_share={share}: the pretraining has no data.noise_schedule to stretch; set one in "
            "pretrain_overrides (e.g. {data.noise_schedule.start: 0.0}) or leave noise_schedule_share null"
        )
    check_schedule(config)
    return config


def parse(argv: Sequence[str], exit_on_error: bool = True) -> tuple[AblationConfig, bool]:
    """(the checked config, ``--table_only``) of a command line; a bad one raises :class:`UserError` (or, with
    ``exit_on_error``, a parse error exits 2 in one line)."""
    argv = config_files(argv)
    ns = parser(exit_on_error).parse_args(list(argv))
    return from_namespace(ns, argv), bool(ns.table_only)


def load_config(path: str | Path, out_dir: str | None = None) -> AblationConfig:
    """Read and check an ablation YAML (configs/ablation/*.yaml) as ``bart-pretrain ablate -c <path>`` would; every
    error a :class:`UserError` naming the field, the value and what is allowed, before any cell runs."""
    return parse(["-c", str(path), *(["--out_dir", out_dir] if out_dir is not None else [])], exit_on_error=False)[0]
