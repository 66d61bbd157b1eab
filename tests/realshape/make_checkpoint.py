"""Build a tiny checkpoint shaped exactly like ``google/diffusiongemma-26B-A4B-it``.

Nothing here can download the released files, so this writes their shape at small scale:
the real classes, the real file layout, the real token ids, tiny widths and random weights.
Run it as ``python tests/realshape/make_checkpoint.py OUT`` or through :func:`cached`
(the tests' session fixture), which keeps one build per version of this file under
``.cache/realshape/`` at the repository root (gitignored).

What is written (``OUT/checkpoint`` and the same files as a Hugging Face cache under
``OUT/hf_home/hub/models--google--diffusiongemma-26B-A4B-it/``, blobs + ``snapshots/<rev>/``
symlinks + ``refs/main``, so ``HF_HOME=OUT/hf_home dgterm ... --model
google/diffusiongemma-26B-A4B-it`` resolves offline the way a real download does):

- ``config.json``: ``runtime/profiles/diffusiongemma-26b-a4b/config.json`` with the widths
  shrunk and everything else kept (5 sliding : 1 full layers, MoE experts beside the dense
  MLP, 262,144-entry vocabulary, tied embeddings, max positions, rope parameters, a Gemma 4
  vision tower, the multimodal token ids), written by ``DiffusionGemmaForBlockDiffusion``'s
  own ``save_pretrained``; the decoder's self-conditioning block comes with the class.
- the weights in bfloat16 over several safetensors shards with ``model.safetensors.index.json``
  (``save_pretrained(max_shard_size=...)``), under the real parameter names.
- ``generation_config.json``: ``DiffusionGemmaGenerationConfig`` with the values transformers'
  conversion script writes for this checkpoint (48 steps, entropy bound 0.1, t 0.8 -> 0.4,
  stability 1, confidence 0.005, max_new_tokens 256, eos [1, 106, 50], pad 0).
- ``tokenizer.json`` + ``tokenizer_config.json``: transformers' own ``GemmaTokenizer`` (what
  the Gemma 4 conversion builds): BPE with byte fallback, spaces normalized to ``▁``, decoder
  ``Replace(▁, " ") + ByteFallback + Fuse``, no BOS added by encoding; the Gemma 4 special
  tokens registered under the names the conversion gives them; a chat template with a
  thinking channel in ``tokenizer_config.json``.

Documented (transformers' ``convert_diffusion_gemma_weights.py`` and
``convert_gemma4_weights.py``, and published Gemma 4 tokenizer files): the checkpoint reuses
Gemma 4's tokenizer and processor, so its chat format is Gemma 4's ``<|turn>role\\n ...
<turn|>`` (not Gemma 2/3's ``<start_of_turn>``/``<end_of_turn>``, which do not exist in this
vocabulary) and a thought is ``<|channel>thought\\n ... <channel|>``, switched on by ``<|think|>``
in the system turn; ids ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, ``<mask>`` 4,
``<|tool_response>`` 50 (the third EOS), ``<turn|>`` 106, ``<|image>`` 255999, ``<|image|>``
258880, ``<image|>`` 258882; as used by several public Gemma 4 integrations: ``<|tool>`` 46,
``<tool|>`` 47, ``<|tool_call>`` 48, ``<tool_call|>`` 49, ``<tool_response|>`` 51, ``<|"|>`` 52,
``<|think|>`` 98, ``<|channel>`` 100, ``<channel|>`` 101, ``<|turn>`` 105, ``"\\n"`` 107.

Assumed (not published where this could read it): where the 256 byte-fallback tokens
``<0x00>``..``<0xFF>`` sit (here 238..493), ``<|audio>`` 256000 / ``<|audio|>`` 258881 /
``<audio|>`` 258883, the ordinary pieces (here a small BPE trained on a few paragraphs, ASCII
only, so accents, CJK and emoji go through byte fallback as rare characters do in the real
one; the rest of the 262,144 ids are unreachable filler pieces such as ``▁qzv``), the exact
wording of the chat template (here a short one with the documented markers and behaviour),
and the processor/image-processor files (dgterm reads none of them; not written).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "runtime" / "profiles" / "diffusiongemma-26b-a4b" / "config.json"
REPO_ID = "google/diffusiongemma-26B-A4B-it"
CACHE = REPO / ".cache" / "realshape"

# the widths that shrink; every other field keeps the profile's value
TEXT = dict(hidden_size=32, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            global_head_dim=32, num_global_key_value_heads=1, intermediate_size=48, moe_intermediate_size=16,
            num_experts=4, top_k_experts=2)
VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
              num_key_value_heads=2, head_dim=8, position_embedding_size=64)
CANVAS = 32
SHARD = "100KB"  # the embedding is one 16 MiB shard of its own; the rest spreads over a few more

SPECIALS = {
    0: "<pad>", 1: "<eos>", 2: "<bos>", 3: "<unk>", 4: "<mask>",
    46: "<|tool>", 47: "<tool|>", 48: "<|tool_call>", 49: "<tool_call|>", 50: "<|tool_response>",
    51: "<tool_response|>", 52: '<|"|>', 98: "<|think|>", 100: "<|channel>", 101: "<channel|>",
    105: "<|turn>", 106: "<turn|>",
    255999: "<|image>", 256000: "<|audio>", 258880: "<|image|>", 258881: "<|audio|>", 258882: "<image|>",
    258883: "<audio|>",
}
NAMED = {  # GemmaTokenizer's extra special tokens, as the Gemma 4 conversion names them
    "image_token": "<|image|>", "boi_token": "<|image>", "eoi_token": "<image|>", "audio_token": "<|audio|>",
    "boa_token": "<|audio>", "eoa_token": "<audio|>", "sot_token": "<|turn>", "eot_token": "<turn|>",
    "soc_token": "<|channel>", "eoc_token": "<channel|>", "think_token": "<|think|>", "escape_token": '<|"|>',
    "str_token": "<|tool_response>", "etr_token": "<tool_response|>", "stc_token": "<|tool_call>",
    "etc_token": "<tool_call|>", "std_token": "<|tool>", "etd_token": "<tool|>",
}
NEWLINE_ID, BYTES_FROM, PIECES_FROM = 107, 238, 494

CHAT_TEMPLATE = (  # text only through {{ }} so that whitespace control never eats a newline
    "{{- bos_token -}}"
    "{%- set thinking = enable_thinking | default(false) -%}"
    "{%- set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' -%}"
    "{%- if thinking or system -%}"
    "{{- '<|turn>system\\n' + ('<|think|>' if thinking else '') + system | trim + '<turn|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages if message['role'] != 'system' -%}"
    "{{- '<|turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' -}}"
    "{%- if message['role'] == 'assistant' and message.get('reasoning_content') -%}"
    "{{- '<|channel>thought\\n' + message['reasoning_content'] | trim + '<channel|>' -}}"
    "{%- endif -%}"
    "{{- message['content'] | trim + '<turn|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|turn>model\\n' -}}{%- endif -%}"
)

CORPUS = """\
The model refines a whole canvas at once and sees both sides of a gap. A causal encoder turns
the prefix into a cache; a bidirectional decoder denoises the canvas, step by step, until the
tokens it is sure of stop changing. Mark a span of a file, press a key, and watch it settle.
def rewrite(text, spans):
    for start, end in spans:
        yield text[:start] + "..." + text[end:]
Every line of the document outside the spans is kept byte for byte, with its own newlines.
Numbers 0 1 2 3 4 5 6 7 8 9 and marks like (a, b) [c] {d} <e> "f" 'g' #h @i $j %k ^l &m *n
+o -p =q /r \\s |t ~u `v ?w !x ;y :z _ were all in the tokenizer's small training text.
"""


def _pieces():
    """Ordinary pieces and merges: a small BPE trained with the Gemma normalization."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    alphabet = [chr(c) for c in range(0x21, 0x7F)] + ["▁", "\t"]
    tok = Tokenizer(models.BPE(byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=alphabet, limit_alphabet=len(alphabet),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    pieces = sorted(model["vocab"], key=model["vocab"].get)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return [p for p in pieces if p != "\n"], merges


def _filler(n: int, taken: set[str]):
    """``n`` distinct word-like pieces no merge can reach (the unused part of the vocabulary)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while n:
        k, s = i, ""
        while True:
            s = letters[k % 26] + s
            k //= 26
            if not k:
                break
        i += 1
        piece = ("▁" if i % 3 else "") + "q" + s
        if piece not in taken:
            taken.add(piece)
            yield piece
            n -= 1


def build_tokenizer(vocab_size: int):
    from transformers import GemmaTokenizer

    pieces, merges = _pieces()
    vocab: dict[str, int] = {text: i for i, text in SPECIALS.items()}
    vocab["\n"] = NEWLINE_ID
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = BYTES_FROM + b
    free = [i for i in range(vocab_size) if i not in vocab.values() and not BYTES_FROM <= i < PIECES_FROM]
    ordinary = [p for p in pieces if p not in vocab]
    filler = _filler(len(free) - len(ordinary), set(vocab) | set(ordinary))
    later = [i for i in free if i >= PIECES_FROM]
    early = [i for i in free if i < PIECES_FROM]
    for i, piece in zip(later[: len(ordinary)], ordinary):
        vocab[piece] = i
    for i, piece in zip(early + later[len(ordinary):], filler):
        vocab[piece] = i
    assert len(vocab) == vocab_size and sorted(vocab.values()) == list(range(vocab_size))
    return GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=False, padding_side="left",
                          extra_special_tokens=NAMED, chat_template=CHAT_TEMPLATE,
                          clean_up_tokenization_spaces=False)


def build_config():
    from transformers import DiffusionGemmaConfig

    config = json.loads(PROFILE.read_text(encoding="utf-8"))
    for key in ("architectures", "model_type", "transformers_version", "dtype"):
        config.pop(key, None)
    text = {k: v for k, v in config.pop("text_config").items() if k != "model_type"}
    text.update(TEXT, layer_types=text["layer_types"][: TEXT["num_hidden_layers"]])
    vision = {**config.pop("vision_config"), **VISION}
    return DiffusionGemmaConfig(text_config=text, vision_config=vision, **{**config, "canvas_length": CANVAS})


def build_generation_config():
    from transformers import DiffusionGemmaGenerationConfig, EntropyBoundSamplerConfig

    return DiffusionGemmaGenerationConfig(
        max_new_tokens=256, max_denoising_steps=48, sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1),
        t_min=0.4, t_max=0.8, stability_threshold=1, confidence_threshold=0.005, eos_token_id=[1, 106, 50],
        pad_token_id=0,
    )


def build(dest: Path) -> Path:
    """Write the checkpoint to ``dest/checkpoint`` and the HF cache to ``dest/hf_home``."""
    import torch
    from transformers import DiffusionGemmaForBlockDiffusion

    config = build_config()
    checkpoint = dest / "checkpoint"
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(config).to(torch.bfloat16).eval()
    model.generation_config = build_generation_config()
    model.save_pretrained(checkpoint, max_shard_size=SHARD)
    build_tokenizer(config.text_config.vocab_size).save_pretrained(checkpoint, save_jinja_files=False)
    hub_cache(checkpoint, dest / "hf_home" / "hub")
    return dest


def hub_cache(checkpoint: Path, hub: Path) -> Path:
    """Lay ``checkpoint`` out as huggingface_hub's cache does: content-addressed blobs,
    a snapshot of relative symlinks named by the commit, and ``refs/main`` naming it."""
    repo = hub / ("models--" + REPO_ID.replace("/", "--"))
    files = sorted(p for p in checkpoint.iterdir() if p.is_file())
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    rev = hashlib.sha1(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo / "snapshots" / rev
    snapshot.mkdir(parents=True, exist_ok=True)
    for p in files:
        blob = repo / "blobs" / digests[p.name]
        if not blob.exists():
            shutil.copyfile(p, blob)
        link = snapshot / p.name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snapshot


def cache_key() -> str:
    import tokenizers
    import transformers

    source = Path(__file__).read_bytes() + PROFILE.read_bytes()
    versions = f"{transformers.__version__} {tokenizers.__version__}".encode()
    return hashlib.sha256(source + versions).hexdigest()[:16]


def cached(root: Path = CACHE) -> Path:
    """The fixture for this version of the generator, built on first use (atomically)."""
    dest = root / cache_key()
    if (dest / "done").exists():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        build(tmp)
        (tmp / "done").write_text("ok\n")
        try:
            tmp.rename(dest)
        except OSError:  # another process finished first
            if not (dest / "done").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in root.iterdir():  # builds of earlier versions of this file
        if old.is_dir() and old.name != dest.name and not old.name.startswith("build-"):
            shutil.rmtree(old, ignore_errors=True)
    return dest


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(build(out) if out else cached())
