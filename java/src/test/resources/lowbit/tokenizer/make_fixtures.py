"""Regenerates the tokenizer.json fixtures of HfTokenizerJsonFixtureTest and the token ids that
Hugging Face's own `tokenizers` library (pip install tokenizers; 0.23.3 made the committed files)
produces for them. Run from this directory: python3 make_fixtures.py

Three small tokenizers, trained here on a few lines of text, in the layouts real models ship:
  sp-bpe     Llama-2 / TinyLlama style: SentencePiece BPE with byte fallback, normalizer
             Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, decoder Replace/ByteFallback/Fuse/Strip;
  metaspace  Mistral style: same model, pre-tokenizer Metaspace (prepend "first", split), decoder Metaspace;
  nfkc-bl    byte-level BPE (GPT-2 alphabet) behind an NFKC + Lowercase normalizer (a Qwen2-style NFC
             normalizer is the common case; NFKC + Lowercase exercises more of the code).
The alphabet of the SentencePiece ones deliberately lacks most CJK characters and emoji, so byte
fallback is exercised.
"""
import json
from tokenizers import Tokenizer, models, trainers, normalizers, pre_tokenizers, decoders

TRAIN = [
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer",
    "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles",
    "Größere Übungen für Straßenbahnen — naïve café déjà vu, über alles.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "def f(x):\n    return x**2  # squares 1, 4, 9, 16",
    "Now is the winter of our discontent made glorious summer by this sun of York.",
]
TEXTS = [
    "To be, or not to be, that is the question: 1599 + 2 = 1601.",
    "Größere Übungen für Straßenbahnen — naïve café déjà vu.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "東京は日本の首都です。今日は良い天気ですね！",
    "안녕하세요, 세계! مرحبا بالعالم. שלום עולם.",
    "emoji 🙂🚀 mixed\tTabs\n\nnew  lines   and    spaces ",
    "  leading spaces, ﬁ ligature, Ⅻ and ＦＵＬＬＷＩＤＴＨ",
    "<s>Hello</s> world",
]


def sp_vocab():
    """A character-level BPE trained without pre-tokenization, renumbered Llama-style:
    <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF> = 3..258, then the learned pieces."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=420, show_progress=False, min_frequency=2)
    tok.train_from_iterator(TRAIN, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for piece, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    return vocab, model["merges"]


def added(content, id_):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def sp_json(vocab, merges, metaspace):
    root = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added("<unk>", 0), added("<s>", 1), added("</s>", 2)],
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
        "post_processor": None,
    }
    if metaspace:
        root["normalizer"] = None
        root["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
        root["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    else:
        root["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        root["pre_tokenizer"] = None
        root["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return root


def nfkc_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<s>", "</s>"])
    tok.train_from_iterator(TRAIN, trainer)
    return json.loads(tok.to_str())


def main():
    vocab, merges = sp_vocab()
    files = {
        "sp-bpe.tokenizer.json": sp_json(vocab, merges, metaspace=False),
        "metaspace.tokenizer.json": sp_json(vocab, merges, metaspace=True),
        "nfkc-bl.tokenizer.json": nfkc_bytelevel(),
    }
    expected = {}
    for name, root in files.items():
        text = json.dumps(root, ensure_ascii=False, indent=None)
        with open(name, "w", encoding="utf-8") as f:
            f.write(text)
        tok = Tokenizer.from_str(text)
        cases = []
        for t in TEXTS:
            ids = tok.encode(t, add_special_tokens=False).ids
            cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
        expected[name] = cases
    with open("expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
