"""Alignment: teaching a chat model which answers people prefer.

    pairs.py         preference pairs and prompts, rendered with the chat template
    logprobs.py      log pi(answer | prompt), token by token, with masks over the answer only
    reward_model.py  a scalar score from the policy's backbone, trained with the Bradley–Terry loss
    dpo.py           Direct Preference Optimisation: the preferences straight into the policy
    ppo.py           PPO: sample answers, score them, push the policy up the reward with a KL leash
    measure.py       the side-by-side measures: reward, KL, win rate, distinct-2, length, time, memory
    loop.py          what the three training loops share (settings, schedule, checkpoints)
"""

from .logprobs import (AnswerBatch, batch_answers, entropy_from_logits, logprobs_from_logits, pad_sequences,
                       sequence_logprobs, token_logprobs)
from .pairs import (PreferencePair, answer_ids, as_messages, dialogue_prompts, end_id, load_preference_pairs,
                    prompt_ids, prompt_text)
from .reward_model import (EncodedPairs, RewardConfig, RewardEval, RewardModel, bradley_terry_loss,
                           check_same_tokenizer, encode_pairs, evaluate_reward_model, train_reward_model)

__all__ = [
    "PreferencePair", "load_preference_pairs", "dialogue_prompts", "prompt_ids", "answer_ids", "as_messages",
    "end_id", "prompt_text",
    "AnswerBatch", "batch_answers", "pad_sequences", "logprobs_from_logits", "entropy_from_logits",
    "token_logprobs", "sequence_logprobs",
    "RewardModel", "RewardConfig", "RewardEval", "EncodedPairs", "bradley_terry_loss", "check_same_tokenizer",
    "encode_pairs", "evaluate_reward_model", "train_reward_model",
]
from .dpo import DPOConfig, DPOOutput, dpo_loss, evaluate_dpo, sample_preference_pairs, train_dpo  # noqa: E402
from .ppo import (AdaptiveKL, PolicyLoss, PolicyWithValue, PPOConfig, PPOTrainer, Rollout,  # noqa: E402
                  clipped_policy_loss, clipped_value_loss, gae, kl_per_token, rollout, token_rewards, whiten)

__all__ += [
    "DPOConfig", "DPOOutput", "dpo_loss", "evaluate_dpo", "sample_preference_pairs", "train_dpo",
    "AdaptiveKL", "PolicyLoss", "PolicyWithValue", "PPOConfig", "PPOTrainer", "Rollout", "clipped_policy_loss",
    "clipped_value_loss", "gae", "kl_per_token", "rollout", "token_rewards", "whiten",
]
from .measure import (POLITE_WORDS, RUDE_WORDS, PolicyReport, evaluate_policy, peak_memory, politeness,  # noqa: E402
                      ranking_agreement, side_by_side, token_kl, win_rate)

__all__ += ["PolicyReport", "evaluate_policy", "peak_memory", "side_by_side", "token_kl", "win_rate", "politeness",
            "ranking_agreement", "POLITE_WORDS", "RUDE_WORDS"]
