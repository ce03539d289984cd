"""A single-turn verifiers (0.4) taskset for rlvr's checks: say the digit the prompt names; the rubric's one
reward is 1 when the reply contains it (with `broken: true` the reward function raises instead: a rollout
whose scoring fails). Needs no network and no keys."""

import verifiers.v1 as vf


class DigitConfig(vf.TasksetConfig):
    broken: bool = False


class DigitData(vf.TaskData):
    answer: str
    broken: bool = False


class DigitTask(vf.Task[DigitData, vf.State, vf.TaskConfig]):
    @vf.reward
    async def says_digit(self, task, trace) -> float:
        if task.broken:
            raise RuntimeError("the rubric broke")
        return float(task.answer in trace.last_reply)


class DigitTaskset(vf.Taskset[DigitTask, DigitConfig]):
    def load(self):
        for i in range(10):
            yield DigitTask(DigitData(prompt=f"Say {i}.", system_prompt="Answer with one digit.", answer=str(i),
                                      broken=self.config.broken),
                            self.config.task)


__all__ = ["DigitTaskset"]
