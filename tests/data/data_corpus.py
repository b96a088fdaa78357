"""Small corpora written for the data tests (Japanese included) and config helpers.

Imported by the tests as ``data_corpus`` (pytest puts this directory on ``sys.path``)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from fugaku_sim.data.config import DataConfig

JA_SENTENCES = [
    "今日は朝から雨が降っていたので、傘を持って駅まで歩きました。",
    "図書館で借りた本は来週の月曜日までに返さなければなりません。",
    "このプログラムはファイルを読み込んで、行の数を数えて表示します。",
    "富士山の頂上から見た日の出は、言葉にできないほど美しかった。",
    "新しいスーパーコンピュータは、気象の予測をより正確にするために使われます。",
    "彼女は毎晩寝る前に、日記を三行だけ書くことにしている。",
    "電車が遅れたため、会議の開始時刻を十五分遅らせることになった。",
    "祖母の作る味噌汁は、どの店で食べるものよりも美味しいと思う。",
    "設定ファイルの書式が正しくない場合、コマンドはエラーを表示して終了します。",
    "桜の季節になると、公園は花見をする人々でいっぱいになります。",
    "引数を指定しなかった場合は、現在のディレクトリが使われます。",
    "週末には友達と一緒に山へ登り、頂上でおにぎりを食べました。",
    "この関数は、与えられた文字列を逆順に並べ替えて返します。",
    "子供たちは川で魚を捕まえようとして、靴まで濡らしてしまった。",
    "ネットワークの帯域幅が足りないと、計算よりも通信に時間がかかります。",
    "駅前の喫茶店では、静かな音楽が流れていて勉強がはかどる。",
    "オプションを付けると、隠しファイルも一覧に含まれるようになります。",
    "秋の夜長には、温かいお茶を飲みながら小説を読むのが好きだ。",
    "大規模な言語モデルの学習には、膨大な量の文章と計算資源が必要です。",
    "旅行の計画を立てるときは、まず行きたい場所を地図に書き出します。",
    "エラーが起きたときは、ログファイルを確認して原因を調べてください。",
    "冬になると北海道では雪が積もり、道路が凍って滑りやすくなる。",
    "日本語の文章には、ひらがなとカタカナと漢字が混ざっています。",
    "このコマンドは、指定されたプロセスにシグナルを送ります。",
    "夏休みの宿題を最終日にまとめてやるのは、もうやめようと決めた。",
    "数値計算の結果は、丸め誤差のために実行するたびに少し変わることがある。",
    "隣の家の猫は、毎朝決まった時間に塀の上で日向ぼっこをしている。",
    "データを複数のノードに分割すると、一台あたりのメモリ使用量が減ります。",
    "商店街の八百屋さんは、いつも季節の野菜を安く売ってくれる。",
    "パスワードは定期的に変更し、他のサービスと同じものを使わないでください。",
]

EN_SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Every morning the baker opens the shop before the sun comes up.",
    "This command prints the number of lines in each file it reads.",
    "A torus network wraps around at the edges, so no node sits at a corner.",
    "She kept a small notebook in which she wrote three lines every night.",
    "The train was late, so the meeting started fifteen minutes after noon.",
    "If no argument is given, the current directory is listed instead.",
    "Large language models need a great deal of text and a great deal of compute.",
    "The old lighthouse keeper climbed the stairs one last time that winter.",
    "When an error occurs, check the log file to find out what went wrong.",
    "Gradient accumulation lets a small machine imitate a large batch size.",
    "Children splashed in the shallow stream, trying to catch tiny silver fish.",
    "The library closes early on Sundays, so return your books by Saturday.",
    "Rounding errors mean that a sum may differ slightly from run to run.",
    "He planted tomatoes, beans and a single stubborn row of sunflowers.",
    "The configuration file must be valid YAML or the program will refuse it.",
    "Autumn evenings are best spent with warm tea and a long novel.",
    "Splitting the data across nodes reduces the memory needed on each one.",
    "The market stall sold apples, pears and jars of dark honey.",
    "Never reuse a password that you already use for another service.",
]

CODE_SNIPPETS = [
    "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, x):\n        self.items.append(x)\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i, 'is even')\n",
    "import os\n\nfor name in sorted(os.listdir('.')):\n    print(name)\n",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
    "    return a\n",
    "with open('data.txt') as f:\n    total = sum(len(line) for line in f)\n",
]


def make_documents(sentences: list[str], count: int, per_doc: int, seed: int,
                   sep: str = "") -> list[str]:
    """``count`` documents of ``per_doc`` distinct sentences each, seeded (few overlaps)."""
    rng = random.Random(seed)
    docs = []
    for k in range(count):
        picked = rng.sample(sentences, per_doc)
        docs.append(f"{k}: " + sep.join(picked) + "\n")
    return docs


def write_corpus(root: Path, n_ja: int = 60, n_en: int = 40, n_code: int = 30) -> dict[str, Path]:
    """Write ja (.txt files), en (.jsonl) and code (.txt) corpora under ``root``."""
    ja_dir = root / "ja"
    ja_dir.mkdir(parents=True)
    for i, doc in enumerate(make_documents(JA_SENTENCES, n_ja, 10, seed=1)):
        (ja_dir / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    en_path = root / "en.jsonl"
    with open(en_path, "w", encoding="utf-8") as f:
        for doc in make_documents(EN_SENTENCES, n_en, 8, seed=2, sep=" "):
            f.write(json.dumps({"text": doc, "meta": "x"}) + "\n")
    code_dir = root / "code"
    code_dir.mkdir()
    for i, doc in enumerate(make_documents(CODE_SNIPPETS, n_code, 4, seed=3, sep="\n")):
        (code_dir / f"m{i:03d}.py.txt").write_text("# module\n" + doc, encoding="utf-8")
    return {"ja": ja_dir, "en": en_path, "code": code_dir}


def small_config(root: Path, **overrides: Any) -> DataConfig:
    """A config over :func:`write_corpus` files plus generated maths, for fast runs."""
    paths = write_corpus(root / "corpus")
    raw: dict[str, Any] = {
        "sources": [
            {"kind": "files", "name": "ja-files", "paths": [str(paths["ja"] / "*.txt")],
             "domain": "ja", "licence": "test text"},
            {"kind": "files", "name": "en-jsonl", "paths": [str(paths["en"])],
             "domain": "auto"},
            {"kind": "files", "name": "code-files", "paths": [str(paths["code"] / "*.txt")],
             "domain": "code"},
            {"kind": "python-stdlib", "name": "stdlib", "max_bytes": 300_000},
            {"kind": "maths", "name": "arithmetic", "count": 2000, "eval_count": 100},
        ],
        "clean": {"min_document_chars": 50},
        "splits": {"train": 0.8, "valid": 0.1, "test": 0.1},
        # Code gets a large share so the small sample still supports a 1000-piece vocabulary.
        "mixture": {"ja": 0.45, "en": 0.15, "code": 0.35, "maths": 0.05},
        "tokenizer": {"vocab_size": 1000, "sample_chars": 200000},
        "workers": 2,
    }
    raw.update(overrides)
    return DataConfig.model_validate(raw)
