"""A multi-turn verifiers (0.4) environment for rlvr's checks: guess a digit in at most three tries. The env
plays the user (as verifiers' own textarena env does): after each guess it answers "higher" or "lower", and
it records the reward, 1 for a found digit, 0 otherwise. Needs no network and no keys."""

import re

import verifiers.v1 as vf


class GuessData(vf.TaskData):
    target: int


class GuessTask(vf.Task[GuessData, vf.State, vf.TaskConfig]):
    pass


class GuessEnvConfig(vf.EnvConfig):
    player: vf.AgentConfig = vf.AgentConfig()


class GuessEnv(vf.Env[GuessEnvConfig]):
    async def run(self, task, agents):
        target, won = task.data.target, 0.0
        async with agents.player.interaction(task) as interaction:
            segment = await interaction.turn()
            for attempt in range(3):
                if segment.terminated:
                    break
                found = re.findall(r"\d", segment.last_reply or "")
                guess = int(found[0]) if found else -1
                if guess == target:
                    won = 1.0
                    break
                if attempt == 2:  # no guess left
                    break
                segment = await interaction.turn("higher" if guess < target else "lower")
        interaction.trace.record_reward("found", won)


class GuessTaskset(vf.Taskset[GuessTask, vf.TasksetConfig]):
    def load(self):
        for i in range(10):
            yield GuessTask(GuessData(prompt="I picked a digit from 0 to 9. Guess it: reply with one digit.",
                                      target=(7 * i + 3) % 10), self.config.task)


__all__ = ["GuessEnv", "GuessTaskset"]
