"""Rotating Gaussians with their frame: wxyz quaternions and real spherical-harmonics coefficients.

A frame change ``p' = R p`` turns a Gaussian's orientation ``Q`` into ``R Q`` (``quaternion_multiply(
quaternion_from_matrix(R), q)``) and its view-dependent color ``f(d)`` into ``f'(d) = f(R^T d)``:
each SH degree's coefficients mix through one (2l+1) x (2l+1) matrix, found here by least squares from the
basis evaluated at fixed directions (exact: the rotated basis lies in the same degree's span).
"""

from __future__ import annotations

import numpy as np

from liftgs.export_ply import SH_C0

_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
MAX_SH_DEGREE = 3


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """[4] unit wxyz quaternion of a 3x3 rotation matrix (sign chosen with w >= 0)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    candidates = np.array([trace, m[0, 0], m[1, 1], m[2, 2]])
    best = int(np.argmax(candidates))
    if best == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif best == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif best == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4]
    q = np.asarray(q)
    return q if q[0] >= 0 else -q


def quaternion_to_matrix(quats: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation matrices of [..., 4] wxyz quaternions (normalised first)."""
    q = np.asarray(quats, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of wxyz quaternions ([4] or [N, 4], broadcast); float32 for float32 b."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b), -1, 0)
    product = np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )
    return product.astype(np.result_type(b, np.float32))


def sh_basis(directions: np.ndarray, degree: int) -> np.ndarray:
    """[M, (degree + 1)^2] real SH basis at unit ``directions`` [M, 3], in the 3DGS/gsplat order and signs."""
    x, y, z = directions.T
    columns = [np.full_like(x, SH_C0)]
    if degree >= 1:
        columns += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        columns += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        columns += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    return np.stack(columns, axis=1)


def rotate_sh_rest(coefficients: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Higher-order SH coefficients [N, K, C] (K = (degree + 1)^2 - 1, bases 1..K) of ``f`` -> those of
    ``f'(d) = f(R^T d)``, the color function carried along by the frame change ``p' = R p``.

    Raises:
        ValueError: K is not 3, 8 or 15 (degrees 1-3) or 0.
    """
    num_rest = coefficients.shape[1]
    degree = int(round(np.sqrt(num_rest + 1))) - 1
    if (degree + 1) ** 2 - 1 != num_rest or degree > MAX_SH_DEGREE:
        raise ValueError(
            f"{num_rest} higher-order SH coefficients per channel is not degree 1-{MAX_SH_DEGREE}"
        )
    if degree == 0:
        return coefficients
    directions = np.random.default_rng(0).normal(size=(64, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rotated_directions = directions @ np.asarray(rotation, dtype=np.float64)  # rows R^T d
    basis = sh_basis(directions, degree)[:, 1:]
    rotated = sh_basis(rotated_directions, degree)[:, 1:]
    # Y(R^T d) = Y(d) @ mixing, block-diagonal per degree: f'(d) = Y(R^T d) c = Y(d) (mixing c).
    mixing = np.linalg.lstsq(basis, rotated, rcond=None)[0]
    return np.einsum("jk,nkc->njc", mixing, coefficients).astype(coefficients.dtype)
