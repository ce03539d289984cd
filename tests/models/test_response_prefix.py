"""A response prefix starts the model's reply (R1-Zero starts it with "<think>"): it ends the prompt ids and the
verifier sees it in front of the sampled text, in training and in evaluation."""

from __future__ import annotations

from rlvr.config import load_config
from rlvr.models.loading import decode_completion, encode_prompt
from rlvr.trainer import Trainer
from rlvr.types import Problem


def test_prefix_ends_the_prompt_and_starts_the_verified_text(char_tokenizer):
    p = Problem("p", "1+2=", 3, "arithmetic")
    plain = encode_prompt(p, char_tokenizer)
    primed = encode_prompt(p, char_tokenizer, response_prefix="<answer>")
    assert primed[: len(plain)] == plain and primed[len(plain):] == [char_tokenizer.convert_tokens_to_ids("<answer>")]
    ids = char_tokenizer("3</answer>", add_special_tokens=False)["input_ids"]
    assert decode_completion(char_tokenizer, ids, "<answer>") == "<answer>3</answer>"


def test_trainer_scores_prefix_plus_completion(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe(), ["model.response_prefix=<answer>"])
    trainer = Trainer(cfg, tmp_path / "run")
    seen = []
    verify = trainer.task.verify
    trainer.task.verify = lambda problem, text: seen.append(text) or verify(problem, text)
    rollouts = trainer.rollout(trainer.next_problems(2), 0)
    prefix_id = trainer.tokenizer.convert_tokens_to_ids("<answer>")
    assert all(r.prompt_ids[-1] == prefix_id and r.text.startswith("<answer>") for r in rollouts)
    result = trainer.run_eval("rl")
    assert seen and all(t.startswith("<answer>") for t in seen)
    assert result["n"] == cfg.eval.num_problems
    trainer.logger.close()
