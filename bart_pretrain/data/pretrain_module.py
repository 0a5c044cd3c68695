"""The pretraining DataModule (``--data.*``): corpus -> tokenized, cached documents (or a stream) -> corrupted
token-budget batches. It remembers the last batch the trainer consumed (not the last one a worker prefetched) and
saves it in the checkpoint with what decides the batches (seed, batching, chunking, corpus, noise, ranks), so
``--ckpt_path last`` continues at the exact batch mid-epoch, and a resume that changed any of those is refused.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

import noising
from bart_pretrain.data.batching import TokenBudgetBatchSampler, padding_stats, worker_options
from bart_pretrain.data.files import check_stream_source
from bart_pretrain.data.noise_config import DEFAULT_RECIPE, load_noise, recipe_of
from bart_pretrain.data.pretrain_dataset import Corruptor, DenoisingDataset, document_lengths
from bart_pretrain.data.pretrain_stream import (
    StreamingDenoisingDataset,
    StreamingLoader,
    StreamRows,
    TokenizeTexts,
)
from bart_pretrain.errors import UserError, reading_input
from bart_pretrain.paths import InputPath
from bart_pretrain.tokenizer import DEFAULT_SENTINELS, DEFAULT_TOKENIZER
from noising.schedule import NoiseSchedule, ScheduledPipeline

# Lightning warns that a mid-epoch resume is unreliable unless the DataLoader itself is stateful; ours resumes through
# the data module's state (robust to Lightning issue #20550), so the warning does not apply.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")

BART_LARGE = load_noise(DEFAULT_RECIPE)
"""The default noise recipe (``--data.noise``), read from its file: BART-large's."""


class PretrainDataModule(pl.LightningDataModule):
    """Corpus -> tokenized, cached documents -> corrupted token-budget batches (``--data.*``)."""

    def __init__(
        self,
        train_files: list[InputPath] | InputPath = "data/corpus/train.jsonl",
        val_files: list[InputPath] | InputPath | None = "data/corpus/validation.jsonl",
        text_column: str = "text",
        tokenizer_path: InputPath | None = DEFAULT_TOKENIZER,
        noise: noising.Pipeline = BART_LARGE,
        noise_schedule: NoiseSchedule | None = None,
        max_length: int = 512,
        max_tokens: int = 4096,
        max_sentences: int | None = None,
        max_train_documents: int | None = None,
        max_val_documents: int | None = None,
        streaming: bool = False,
        buffer_size: int = 1024,
        num_workers: int = 1,
        tokenize_num_proc: int = 1,
        seed: int = 1234,
    ):
        """
        Args:
            train_files: training text: .txt/.jsonl/.json/.parquet files, a directory, a glob, a list, or a
                ``datasets`` name (see ``bart_pretrain.data.files.read_dataset``).
            val_files: validation text (same forms); null: no validation.
            text_column: column holding the text in JSON/Parquet rows.
            tokenizer_path: tokenizer.json (or a directory with it, or vocab.json + merges.txt); the model's
                vocabulary size is read from it. null: the tokenizer of --model.init_from (what the pretrain command
                uses when it is not set).
            noise: the noise recipe: a recipe file (configs/noise/*.yaml, your own), or its noises
                (``--data.noise.noises '[{class_path: TokenMasking, init_args: {ratio: 0.3}}]'``;
                ``--data.noise.noises.help TextInfilling`` lists a noise's parameters).
            noise_schedule: a curriculum: the recipe's strength ramps from ``start`` to full over ``steps``
                optimizer steps (see noising.schedule); null: full strength throughout. Validation always
                uses the full recipe.
            max_length: documents are cut at sentence boundaries into chunks of at most this many tokens.
            max_tokens: token budget of a batch: samples x longest target (per device, per micro-batch).
            max_sentences: optional cap on samples per batch.
            max_train_documents: use a seeded random subset of this many training documents (null: all).
            max_val_documents: same for validation.
            streaming: read the training text as a stream (for corpora too large to tokenize up front).
            buffer_size: streaming: documents per rank bucketed together.
            num_workers: DataLoader worker processes doing the corruption (0: in the main process).
            tokenize_num_proc: processes for the one-off cached tokenization.
            seed: seed of the batch order and of every sample's corruption.
        """
        super().__init__()
        if max_tokens < max_length:
            raise ValueError(f"data.max_tokens={max_tokens} must be >= data.max_length={max_length}")
        if not isinstance(noise, noising.Pipeline):
            raise TypeError(
                f"data.noise={noise!r}: must be a noising.Pipeline (the command line reads a recipe file into one; in "
                "Python: bart_pretrain.data.noise_config.load_noise(path))"
            )
        if isinstance(noise_schedule, dict):
            noise_schedule = NoiseSchedule(**noise_schedule)
        if noise_schedule is not None and noise_schedule.steps and streaming:
            raise ValueError("data.noise_schedule needs map-style data (the step of a streamed batch is not known)")
        # A bad recipe (or a schedule that cannot scale it) fails now, not after the corpus is tokenized.
        ScheduledPipeline(noise, noise_schedule or NoiseSchedule())
        self.noise, self.noise_schedule = noise, noise_schedule
        self.objective_tokens = DEFAULT_SENTINELS if noise.objective is not None else 0
        """Sentinels the tokenizer gains (with ``<mask_sentence>``, ``[R]``, ``[S]``, ``[X]``) because the recipe ends
        in an objective; 0: the tokenizer as it is (linked to the model, whose vocabulary follows)."""
        self.save_hyperparameters(ignore=["noise"])
        self.hparams["noise"] = recipe_of(noise)  # plain data: checkpoints load with weights_only=True
        self.train_files, self.val_files, self.text_column = train_files, val_files, text_column
        self.tokenizer_path = tokenizer_path
        self.max_length, self.max_tokens, self.max_sentences = max_length, max_tokens, max_sentences
        self.max_train_documents, self.max_val_documents = max_train_documents, max_val_documents
        self.streaming, self.buffer_size = streaming, buffer_size
        self.num_workers, self.tokenize_num_proc, self.seed = num_workers, tokenize_num_proc, seed
        self.tokenizer = None
        self.train_docs = self.val_docs = None
        self._train_loader: Any = None
        self._consumed: tuple[int, Any] | None = None  # (epoch, position) of the last batch the trainer trained on
        self._resume: tuple[int, Any] | None = None

    # -- preparation (rank 0 first: the tokenization is cached, other ranks then load the cache) -----------------
    def _load_tokenizer(self):
        from bart_pretrain.tokenizer import Tokenizer

        if self.tokenizer is None:
            if self.tokenizer_path is None:
                raise ValueError("data.tokenizer_path is null and no tokenizer was attached (--model.init_from's)")
            self.tokenizer = Tokenizer.from_file(self.tokenizer_path, "--data.tokenizer_path")
            if self.objective_tokens:
                self.tokenizer = self.tokenizer.with_objective_tokens(self.objective_tokens)
        return self.tokenizer

    def _documents(self, files: str | list[str], limit: int | None, split: str):
        from bart_pretrain.data.documents import tokenize_dataset
        from bart_pretrain.data.files import load_text_dataset

        ds = load_text_dataset(files, self.text_column, split=split, flag="--data.text_column")
        if limit is not None and limit < len(ds):
            rng = np.random.default_rng(self.seed)
            ds = ds.select(np.sort(rng.choice(len(ds), size=limit, replace=False)))
        docs = tokenize_dataset(ds, self._load_tokenizer(), self.max_length, self.text_column, self.tokenize_num_proc)
        if len(docs) == 0:
            raise ValueError(f"{files}: no document with any token after tokenization")
        return docs

    @reading_input()  # the corpus files, the tokenizer: what is wrong with them is the user's
    def prepare_data(self) -> None:
        if not self.streaming:
            self._documents(self.train_files, self.max_train_documents, "train")
        if self.val_files:
            self._documents(self.val_files, self.max_val_documents, "validation")

    @reading_input()
    def setup(self, stage: str | None = None) -> None:
        tok = self._load_tokenizer()
        self.corruptor = Corruptor(self.noise, tok.noise_context(self.max_length), self.noise_schedule)
        if self.streaming and stage in (None, "fit"):
            check_stream_source(self.train_files, self.text_column)  # what load_text_dataset checks, up front
        if self.train_docs is None and not self.streaming and stage in (None, "fit"):
            self.train_docs = self._documents(self.train_files, self.max_train_documents, "train")
            self.train_lengths = document_lengths(self.train_docs)
        if self.val_docs is None and self.val_files:
            self.val_docs = self._documents(self.val_files, self.max_val_documents, "validation")
            self.val_lengths = document_lengths(self.val_docs)

    def attach_tokenizer(self, tokenizer) -> None:
        """Use ``tokenizer`` (the model's, when it comes with ``--model.init_from``) instead of reading
        ``tokenizer_path``; before the data is prepared. A recipe ending in an objective needs its tokens in it."""
        if self.objective_tokens and len(tokenizer.sentinel_ids) < self.objective_tokens:
            raise ValueError(
                f"--data.noise: the recipe's objective {type(self.noise.objective).__name__} needs the objective "
                "tokens (<extra_id_N>, [R], [S], [X], <mask_sentence>), which the model's tokenizer "
                "(--model.init_from) lacks; start from a checkpoint pretrained with an objective, or from random "
                "weights"
            )
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return self._load_tokenizer().vocab_size

    # -- loaders -------------------------------------------------------------------------------------------------
    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset: Dataset, sampler: TokenBudgetBatchSampler) -> DataLoader:
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            persistent_workers=False,  # workers must see each epoch's sampler state afresh
            **worker_options(self.num_workers),
        )

    def train_dataloader(self):
        world, rank = self._ranks()
        tok = self._load_tokenizer()
        if self.streaming:
            dataset = StreamingDenoisingDataset(
                StreamRows(self.train_files, self.text_column),
                self.corruptor,
                max_tokens=self.max_tokens,
                seed=self.seed,
                tokenize=TokenizeTexts(tok, self.max_length),
                text_column=self.text_column,
                buffer_size=self.buffer_size,
                max_sentences=self.max_sentences,
                num_replicas=world,
                rank=rank,
            )
            loader = StreamingLoader(dataset, self.num_workers)
        else:
            sampler = TokenBudgetBatchSampler(
                self.train_lengths,
                self.max_tokens,
                max_sentences=self.max_sentences,
                seed=self.seed,
                num_replicas=world,
                rank=rank,
            )
            dataset = DenoisingDataset(
                self.train_docs,
                self.corruptor,
                seed=self.seed,
                batches_per_epoch=len(sampler),
                batches_per_step=self.trainer.accumulate_grad_batches if self.trainer is not None else 1,
            )
            loader = self._loader(dataset, sampler)
        self._train_loader = loader
        if self._resume is not None:
            self._apply_resume()
        return loader

    def val_dataloader(self):
        if self.val_docs is None:
            return []
        world, rank = self._ranks()
        sampler = TokenBudgetBatchSampler(
            self.val_lengths, self.max_tokens, shuffle=False, seed=self.seed, num_replicas=world, rank=rank
        )
        dataset = DenoisingDataset(
            self.val_docs, self.corruptor, seed=self.val_seed, fixed_epoch=0, trace=True,
        )  # fmt: skip
        return self._loader(dataset, sampler)

    def target_padding(self) -> dict[str, float] | None:
        """Padding of the target side of this epoch's training plan, the very plan the train sampler follows (seed,
        epoch, ``max_sentences``, ranks); sources vary with the noise (see the logged share). None when streaming."""
        loader = self._train_loader
        lengths = getattr(self, "train_lengths", None)
        if lengths is None or loader is None or isinstance(loader, StreamingLoader):
            return None
        return padding_stats(lengths, loader.sampler.global_plan())

    @property
    def val_seed(self) -> int:
        """Seed of the validation corruption (epoch 0, always): validation sees one fixed corrupted set."""
        return self.seed + 1

    def val_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(source, target) of validation document ``index``, exactly as validation makes it: the corrupted document
        and the original, or the objective's pair."""
        return self.corruptor(self.val_docs[index], noising.sample_rng(self.val_seed, 0, index))

    # -- exact resume --------------------------------------------------------------------------------------------
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training and isinstance(batch, dict) and "position" in batch:
            self._consumed = (int(batch["epoch"]), batch["position"])
        return batch

    def state_dict(self) -> dict[str, Any]:
        if self._consumed is None:
            return {}
        epoch, position = self._consumed
        return {"epoch": epoch, "position": position, **self.data_plan()}

    def data_plan(self) -> dict[str, Any]:
        """What a saved batch position means: the flags that decide which batches come in which order, and a
        fingerprint of the training chunks (their count and lengths: the corpus files, the tokenizer and
        ``max_length`` as they came out)."""
        trainer = self.trainer
        plan: dict[str, Any] = {
            "seed": self.seed,
            "streaming": self.streaming,
            "max_tokens": self.max_tokens,
            "max_length": self.max_length,
            "max_sentences": self.max_sentences,
            "max_train_documents": self.max_train_documents,
            "noise": repr(self.corruptor.noise) if hasattr(self, "corruptor") else None,
            "noise_schedule": repr(self.noise_schedule or NoiseSchedule()),
            "ranks": trainer.world_size if trainer is not None else 1,
            "accumulate_grad_batches": trainer.accumulate_grad_batches if trainer is not None else 1,
        }
        lengths = getattr(self, "train_lengths", None)
        if lengths is not None:
            digest = hashlib.sha256(np.ascontiguousarray(lengths, dtype=np.int64).tobytes()).hexdigest()[:16]
            plan["train_chunks"] = f"{len(lengths)} chunks, lengths sha256 {digest}"
        else:
            plan["train_files"] = repr(self.train_files)
        return plan

    # The flag that sets each entry of data_plan(), for messages.
    PLAN_FLAGS = {
        "seed": "--data.seed", "streaming": "--data.streaming", "max_tokens": "--data.max_tokens",
        "max_length": "--data.max_length", "max_sentences": "--data.max_sentences",
        "max_train_documents": "--data.max_train_documents", "noise": "--data.noise",
        "noise_schedule": "--data.noise_schedule", "ranks": "--trainer.devices x --trainer.num_nodes",
        "accumulate_grad_batches": "--trainer.accumulate_grad_batches",
        "train_chunks": "the training corpus (--data.train_files, --data.tokenizer_path)",
        "train_files": "--data.train_files",
    }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        current = self.data_plan()
        changed = [k for k in current if k in state and state[k] != current[k]]  # older checkpoints lack some keys
        if changed:
            what = "; ".join(f"{self.PLAN_FLAGS[k]}: {current[k]!r}, the checkpoint's {state[k]!r}" for k in changed)
            raise UserError(
                f"resuming with other data settings than the run had ({what}): the saved batch position would apply "
                "to other batches; resume with the run's settings, or start a new run (--overwrite true, or another "
                "--run_dir)"
            )
        self._resume = (int(state["epoch"]), state["position"])
        self._consumed = self._resume
        if self._train_loader is not None:
            self._apply_resume()

    def _apply_resume(self) -> None:
        epoch, position = self._resume
        loader = self._train_loader
        if isinstance(loader, StreamingLoader):
            loader.resume_after(epoch, position)
        else:
            if loader.sampler.iterations:
                raise RuntimeError(
                    "the train loader started before the checkpoint's data position was restored, so the run would "
                    "not continue at the right batch (Lightning issue #20550: something read "
                    "trainer.estimated_stepping_batches in configure_optimizers under a strategy that restores "
                    "checkpoints after setup, e.g. FSDP/DeepSpeed); use --trainer.max_steps for the schedule instead"
                )
            loader.sampler.resume(epoch, int(position) + 1)
        self._resume = None
