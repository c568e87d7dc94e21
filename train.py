"""The train command; its code and help: dismir_tf/commands/train.py
(installed as ``dismir-train``)."""

from dismir_tf.commands.train import run

if __name__ == "__main__":
    run()
