"""The evaluate command; its code and help: dismir_tf/commands/evaluate.py
(installed as ``dismir-evaluate``)."""

from dismir_tf.commands.evaluate import run

if __name__ == "__main__":
    run()
