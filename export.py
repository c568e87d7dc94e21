"""The export command; its code and help: dismir_tf/commands/export.py
(installed as ``dismir-export``)."""

from dismir_tf.commands.export import run

if __name__ == "__main__":
    run()
