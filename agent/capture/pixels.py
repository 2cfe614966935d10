"""Reading a :class:`Frame` in whichever pixel format it carries: the luma plane, I420, BGR, JPEG.

The video path keeps frames in I420 (``yuv420p``) from the camera to every encoder; BGR appears only
where a caller still hands BGR frames in (tests, the OpenCV backend). Conversions go through PyAV's
swscale (BT.601 limited range, what the H.264 encoders expect), JPEG through Pillow: no OpenCV.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

from agent.core.errors import CaptureError
from agent.core.model import Frame

U8 = npt.NDArray[np.uint8]


def luma(frame: Frame) -> U8:
    """The (height, width) brightness plane: I420's Y plane as is (a view), or BT.601 grey of BGR."""
    if frame.fmt == "yuv420p":
        return frame.image[: frame.height]
    img = frame.image
    if img.ndim == 2:
        return img
    grey = img[..., 0] * np.float32(0.114) + img[..., 1] * np.float32(0.587) + img[..., 2] * np.float32(0.299)
    return np.asarray(np.rint(grey), dtype=np.uint8)


def full_range(y: npt.NDArray[np.generic]) -> U8:
    """Limited-range luma (16-235) stretched to 0-255 grey, the scale analytics thresholds are set in."""
    stretched = (y.astype(np.float32) - 16.0) * np.float32(255.0 / 219.0)
    return np.asarray(np.clip(np.rint(stretched), 0, 255), dtype=np.uint8)


def i420(frame: Frame) -> U8:
    """The frame as one contiguous I420 array (height * 3 / 2, width); converted once if it is BGR."""
    if frame.fmt == "yuv420p":
        return frame.image
    import av

    if frame.width % 2 or frame.height % 2:
        raise CaptureError(f"frame {frame.index} is {frame.width}x{frame.height}: I420 needs an even size")
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format="bgr24")
    return np.asarray(vf.reformat(format="yuv420p").to_ndarray(), dtype=np.uint8)


def bgr(frame: Frame) -> U8:
    """The frame as (height, width, 3) BGR pixels (converted when it is I420)."""
    if frame.fmt == "bgr24":
        return frame.image
    import av

    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format="yuv420p")
    return np.asarray(vf.to_ndarray(format="bgr24"), dtype=np.uint8)


def bgr_to_i420(image: U8) -> U8:
    """Convert (height, width, 3) BGR to I420 (swscale)."""
    import av

    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
    return np.asarray(vf.reformat(format="yuv420p").to_ndarray(), dtype=np.uint8)


def encode_jpeg(frame: Frame, quality: int = 90, size: tuple[int, int] | None = None) -> bytes:
    """JPEG bytes of the frame, scaled to ``size`` (width, height) if given (Pillow; 4:2:0 like the camera)."""
    from PIL import Image

    if size is not None and size != (frame.width, frame.height):
        import av

        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format=frame.fmt)
        rgb = vf.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
    elif frame.fmt == "yuv420p":  # straight to RGB: a full-sensor frame (4608x2592) keeps one 36 MB copy, not three
        import av

        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format="yuv420p").to_ndarray(
            format="rgb24")
    else:
        rgb = np.ascontiguousarray(frame.image[..., ::-1])
    out = io.BytesIO()
    try:
        Image.fromarray(rgb, "RGB").save(out, format="JPEG", quality=int(quality), subsampling="4:2:0")
    except (OSError, ValueError) as exc:
        raise CaptureError(f"JPEG encoding failed for frame {frame.index}: {exc}") from exc
    return out.getvalue()
