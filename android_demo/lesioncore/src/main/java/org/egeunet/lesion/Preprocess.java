package org.egeunet.lesion;

/**
 * egeunet's preprocessing contract ({@code egeunet.preprocess}) for a photo given as ARGB pixels
 * (what Android's {@code Bitmap.getPixels} returns): RGB as float, bilinear resize to size x size,
 * then a min-max stretch over all channels to [0, 255] (a constant image becomes 0).
 */
public final class Preprocess {
    private Preprocess() {}

    /** ARGB pixels (alpha ignored) -> interleaved RGB floats, height x width x 3. */
    public static float[] rgb(int[] argb) {
        float[] out = new float[argb.length * 3];
        for (int i = 0; i < argb.length; i++) {
            int p = argb[i];
            out[3 * i] = (p >> 16) & 0xff;
            out[3 * i + 1] = (p >> 8) & 0xff;
            out[3 * i + 2] = p & 0xff;
        }
        return out;
    }

    /** The photo resized to size x size, interleaved RGB floats (not yet stretched). */
    public static float[] resized(int[] argb, int height, int width, int size) {
        return Bilinear.resize(rgb(argb), height, width, 3, size, size);
    }

    /** The canonical network input: float32 3 x size x size (NCHW without the batch), values in [0, 255]. */
    public static float[] canonical(int[] argb, int height, int width, int size) {
        float[] hwc = resized(argb, height, width, size);
        float lo = Float.POSITIVE_INFINITY;
        float hi = Float.NEGATIVE_INFINITY;
        for (float v : hwc) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }
        float span = hi - lo;
        int plane = size * size;
        float[] chw = new float[3 * plane];
        for (int i = 0; i < plane; i++) {
            for (int c = 0; c < 3; c++) {
                chw[c * plane + i] = span > 0 ? (hwc[3 * i + c] - lo) / span * 255f : 0f;
            }
        }
        return chw;
    }
}
