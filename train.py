"""Trains a model and reports its test metrics (PROTOCOL.md).

    python train.py                       # DisMIR on the built-in synthetic set
    python train.py --dataset gowalla     # downloads Gowalla first if needed
    python train.py --dataset_file ../shared/data/beauty/Beauty.txt.gz \
        --dataset_format seq_lines --model mir

Running the same command again resumes an interrupted run.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dismir_tf import cli  # noqa: E402

cli.define_data_flags()
cli.define_model_flags()
cli.define_train_flags()


def main(argv):
    del argv
    config = cli.run_config_from_flags()
    from dismir_tf import training

    metrics = training.run(config)
    print(training.describe_metrics(metrics["test"]))


if __name__ == "__main__":
    cli.run_app(main)
