"""BART's document corruptions as small, typed, reproducible functions (numpy only), and objectives that define
their own target (T5 span corruption, PEGASUS gap sentences, UL2's mixture, prefix LM).

A noise is a frozen dataclass (validated hyper-parameters) called as ``noise(doc, rng, ctx)`` -> new
:class:`Document` (the target is the original); an :class:`Objective` is called the same way and returns an
:class:`Example` (source, target); a :class:`Pipeline` (a recipe) applies several noises in order, then its
objective if the recipe ends with one; a config names each by its import path (:mod:`noising.registry`:
:data:`BUILTINS`, installed plug-ins); :mod:`noising.testing` is the contract test for plug-in authors. A pipeline
checks every plug-in's output and the
global random generators' states (:mod:`noising.global_random`) on each call, and :func:`check_plugins` checks them
at start-up (same seed, same output); a violation is a :class:`PluginContractError` naming the class and the rule.
See the README's plug-in guide.

Deliberate differences from fairseq's ``DenoisingDataset`` (fairseq/data/denoising_dataset.py):

1. Seeding: one ``numpy.random.Generator`` per sample from ``SeedSequence([seed, epoch, index])``
   (:func:`sample_rng`), passed explicitly; fairseq reseeds the global numpy RNG and also draws from torch's
   global RNG, which workers and ranks share. Streams differ from fairseq's, so outputs are not bit-equal.
2. Order is configured, not hard-coded: fairseq always permutes sentences BEFORE masking; our BART-large
   recipe infills first, then permutes (the spans then move with their sentence).
3. Sentences come from ``doc.sentence_starts`` (a real splitter at tokenization time), not from a full-stop
   token id, so permutation works with any tokenizer. Words come from ``doc.word_starts``, not from a
   GPT-2-specific "begins with a space" table; the first content token always starts a word.
4. Text infilling: spans never overlap and the budget ``ceil(ratio * words)`` is EXACTLY what is covered
   (fairseq starts spans at random word starts regardless of each other, so spans overlap and cover ~27% of
   the tokens instead of 30%; its length ratio is ~0.80, ours ~0.76 on 512-token documents). Each span
   lands at a uniformly random boundary of the uncovered words, independently of the others (spans may touch:
   each still becomes its own mask); a span never runs past ``</s>``.
5. 0-length spans insert their mask at a uniformly random word boundary, like any span (fairseq inserts them
   anywhere, with ``add_insertion_noise``, and makes ``ceil(n * random_ratio)`` of them random, i.e. at least
   one as soon as ``mask_random > 0``). Ours: each span, 0-length or not, is random with chance ``mask_random``.
6. Random replacements never draw a special id (``ctx.random_tokens``); fairseq draws from ``[1, vocab)``,
   which includes <pad>, </s>, <unk>, <mask> and fairseq's ``madeupword`` fillers.
7. Random insertion never grows a document past ``ctx.max_length``; it inserts ``ceil(ratio * content
   tokens)`` (fairseq counts <s>/</s> too), each at an independent uniformly random token boundary (fairseq:
   distinct random slots of the result), and picks random tokens per insert with chance ``random_ratio``
   (fairseq: exactly ``ceil(n * random_ratio)``).
8. Document rotation picks the new first token uniformly among content tokens (fairseq's offsets 1 and
   L - 1 both leave the document unchanged, so "no rotation" is twice as likely as any rotation).
9. Sentence permutation: ``ceil(ratio * sentences)`` sentences are shuffled among their own places, as in
   fairseq; empty sentences are ignored and dropped from the output's ``sentence_starts``.
10. Token masking and token deletion are their own noises with an exact count ``ceil(ratio * units)``
    (fairseq reaches them through ``add_whole_word_mask`` with ``replace_length`` -1 / 0 and 1-long spans).
    Token masking can also keep a share unchanged (``keep_ratio``, BERT's 10%); fairseq cannot.
11. 0-length spans never grow a document past ``ctx.max_length`` (with a small ``poisson_lambda`` most spans
    have length 0 and fairseq's inserted masks can multiply a document's length); extra ones are dropped.
12. A budget of 0 (ratio 0, or a document with no content) returns the input unchanged, so ratio 0 is the
    identity for every noise; documents of only <s></s>, one token, or only special ids are all valid input.
13. Uniform integers are drawn as ``floor(u * n)`` from ``rng.random`` (3x cheaper than ``rng.integers``;
    bias below ``n / 2**53``).

The objectives, against their papers' reference code (t5.data.preprocessors, PEGASUS, UL2):

14. T5 spans: counts as T5's ``random_spans_noise_mask`` (``round(ratio * n)`` tokens, at least 1, in
    ``round(noise / mean_span)`` spans, uniform compositions, text before every span), but text may follow the last
    span (T5's code always ends on a span) and the target always ends with a closing sentinel, as the paper's figure
    shows; at most ``n - 2`` tokens and ``n - noise - 1`` spans, so the target is never longer than the document
    (documents of fewer than 3 content tokens: source = document, target ``<s></s>``). Sentinels count up from
    ``<extra_id_0>`` at the first id after the other objective tokens (T5's count down from the vocabulary's end).
15. Gap sentences: ROUGE-1 over the document's words as token sequences (PEGASUS scores detokenized words); the
    count is ``ceil(ratio * sentences)`` as for every noise here; no token masking alongside (PEGASUS's MLM).
16. UL2: the mode token takes ``<s>``'s place (first in the source, no length added); X is two denoisers (spans of
    mean 32 at 15%, or of mean 3 at 50%) drawn half and half, and the default weights 2 : 1 : 4 give the paper's
    seven denoisers equal chances; S cuts at a uniform token (both sides non-empty).
"""

from noising._ops import edit
from noising.base import Corruption, Document, Example, Noise, NoiseContext, Objective, sample_rng
from noising.document_rotation import DocumentRotation
from noising.gap_sentences import GapSentences
from noising.pipeline import Pipeline, PluginContractError, check_plugins
from noising.prefix_lm import PrefixLM
from noising.random_insertion import RandomInsertion
from noising.registry import BUILTINS
from noising.sentence_permutation import SentencePermutation
from noising.t5_spans import T5SpanCorruption
from noising.text_infilling import TextInfilling
from noising.token_deletion import TokenDeletion
from noising.token_masking import TokenMasking
from noising.ul2 import UL2Mixture

__all__ = [
    "BUILTINS",
    "Corruption",
    "Document",
    "DocumentRotation",
    "Example",
    "GapSentences",
    "Noise",
    "NoiseContext",
    "Objective",
    "Pipeline",
    "PluginContractError",
    "PrefixLM",
    "RandomInsertion",
    "SentencePermutation",
    "T5SpanCorruption",
    "TextInfilling",
    "TokenDeletion",
    "TokenMasking",
    "UL2Mixture",
    "edit",
    "check_plugins",
    "sample_rng",
]
