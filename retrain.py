"""The retrain command; its code and help: dismir_tf/commands/retrain.py
(installed as ``dismir-retrain``)."""

from dismir_tf.commands.retrain import run

if __name__ == "__main__":
    run()
