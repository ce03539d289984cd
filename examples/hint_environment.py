"""A custom environment in 30 lines: the model may ask `<call>hint</call>` once per episode and is told the
last digit of the answer; a turn without a call ends the episode, and the task's verifier scores the
transcript. `python examples/hint_environment.py` wires it into the loop (3 GRPO steps of an untrained tiny
model, under a minute: it shows the wiring, not learning)."""

from rlvr.config import load_config
from rlvr.environments import Environment, Episode
from rlvr.trainer import Trainer


class HintEpisode(Episode):
    def __init__(self, answer: int):
        super().__init__()
        self.answer = answer

    def respond(self, turn: str) -> str | None:
        self.record.turns += 1
        if not turn.endswith("</call>"):
            return None  # the model answered: the episode ends
        return f"<result>ends in {self.answer % 10}</result>"


class HintEnvironment(Environment):
    pause_strings = ("</call>",)  # where a model turn pauses for an answer

    def open(self, problem):
        return HintEpisode(int(problem.answer))


if __name__ == "__main__":
    cfg = load_config("configs/demo.yaml", ["train.steps=3", "eval.num_problems=16"])
    Trainer(cfg, "runs/hint-example", environment=HintEnvironment()).run()
