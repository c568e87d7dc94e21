"""The compare command; its code and help: dismir_tf/commands/compare.py
(installed as ``dismir-compare``)."""

from dismir_tf.commands.compare import run

if __name__ == "__main__":
    run()
