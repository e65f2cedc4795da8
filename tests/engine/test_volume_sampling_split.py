"""dataset._sample_volume: rays split over threads give the plain sampler's values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from registration.engine.dataset import _sample_volume


@pytest.mark.parametrize("threads, n_rays", [(1, 7), (2, 7), (3, 10), (4, 2)])
def test_split_sampling_equals_one_batch_item(threads, n_rays):
    g = torch.Generator().manual_seed(0)
    vol = torch.rand(1, 1, 9, 11, 13, generator=g)
    pts = torch.rand(n_rays, 5, 3, generator=g) * 2.4 - 1.2  # some outside: zeros
    ref = F.grid_sample(vol, pts.reshape(1, n_rays, 5, 1, 3), mode="bilinear",
                        padding_mode="zeros", align_corners=True)[0, 0, :, :, 0]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _sample_volume(vol, pts)
    finally:
        torch.set_num_threads(before)
    assert got.shape == (n_rays, 5)
    torch.testing.assert_close(got, ref, atol=0, rtol=0)
