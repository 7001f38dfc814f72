"""Solutions for notebook 01."""


def get_pair_counts(ids):
    """{(a, b): how often b directly follows a} over the list of ids."""
    counts = {}
    for pair in zip(ids, ids[1:]):   # (ids[0], ids[1]), (ids[1], ids[2]), ...
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, new_id):
    """Every occurrence of pair in ids, left to right and without overlaps, becomes new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2           # skip both ids of the pair
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_encode(text, merges):
    """text -> ids: from the bytes, always merge the adjacent pair that was learned first."""
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        counts = get_pair_counts(ids)
        pair = min(counts, key=lambda p: merges.get(p, float("inf")))   # earliest learned
        if pair not in merges:
            break                    # no pair of the text was ever merged
        ids = merge(ids, pair, merges[pair])
    return ids


def token_counts(tokenizers, text):
    """The widget question, answered by computing what the explorer shows."""
    return {name: len(tok.encode(text)) for name, tok in tokenizers.items()}
