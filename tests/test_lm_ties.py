"""benchmarks/lm_ties.py counts a tie only where the N-th and (N+1)-th largest |w| are equal."""

from __future__ import annotations

import pytest
import torch

from benchmarks.lm_ties import Count, boundary_ties, pooled, split_name, tie_counts


def test_nm_groups_tie_only_at_the_boundary() -> None:
    weight = torch.tensor([
        [4.0, 3.0, -3.0, 1.0, 8.0, 7.0, 6.0, 5.0],  # 2:4: |3| = |-3| at the boundary; 4:8: 5 > 4
        [4.0, 4.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.5],  # 2:4: the first tie is above the boundary, not at it
    ])
    counts = tie_counts(weight)
    # groups of 4: [4, 3, -3, 1] tied, [8, 7, 6, 5] not, [4, 4, 2, 1] not, [1, 1, 1, .5] tied
    assert counts["2:4"] == Count(2, 4)
    # groups of 8: row 0 sorted 8 7 6 5 | 4 ... (no tie); row 1 sorted 4 4 2 1 | 1 ... (tie)
    assert counts["4:8"] == Count(1, 2)
    # half of each row (4 of 8) is kept: the same boundary as 4:8 for rows of 8
    assert counts["row 50%"] == Count(1, 2)


def test_rows_keep_what_select_rows_keeps() -> None:
    # 5 columns: select_rows prunes round(2.5) = 2 (banker's rounding), so 3 are kept
    weight = torch.tensor([[5.0, 4.0, 3.0, 3.0, 1.0], [5.0, 4.0, 4.0, 3.0, 1.0]])
    counts = tie_counts(weight)
    assert counts["row 50%"] == Count(1, 2)  # row 0: 3rd = 3, 4th = 3; row 1: 3rd = 4, 4th = 3
    assert "2:4" not in counts and "4:8" not in counts  # 4 and 8 do not divide 5 columns


def test_no_boundary_no_tie_and_pooling_adds_counts() -> None:
    ones = torch.ones(3, 4)
    assert boundary_ties(ones, 0) == Count(0, 3)
    assert boundary_ties(ones, 4) == Count(0, 3)
    assert boundary_ties(ones, 2) == Count(3, 3)
    total = pooled([{"2:4": Count(1, 4)}, {"2:4": Count(2, 6), "row 50%": Count(1, 1)}])
    assert total == {"2:4": Count(3, 10), "row 50%": Count(1, 1)}
    assert total["2:4"].fraction == pytest.approx(0.3)


def test_split_name_reads_block_and_projection() -> None:
    assert split_name("model.layers.3.self_attn.q_proj.weight") == (3, "q_proj")
    assert split_name("model.layers.29.mlp.down_proj.weight") == (29, "down_proj")
    with pytest.raises(ValueError, match="lm_head"):
        split_name("lm_head.weight")
