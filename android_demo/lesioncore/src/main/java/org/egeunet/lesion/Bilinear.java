package org.egeunet.lesion;

/**
 * Bilinear resize with OpenCV's {@code cv2.resize(..., INTER_LINEAR)} semantics on float32 data, the
 * resize of egeunet's preprocessing contract and of its output post-processing.
 *
 * <p>Half-pixel centres: source x = (dx + 0.5) * in/out - 0.5, computed as OpenCV does (scale in double,
 * position rounded to float). Horizontally a position left of the first or right of the last pixel takes
 * that pixel alone; vertically the two source rows are clamped into the image with unchanged weights.
 * Each output is {@code s0 * w0 + s1 * w1} in float, horizontally first, as OpenCV computes it.
 */
public final class Bilinear {
    private Bilinear() {}

    /** Resize {@code src} (height x width x channels, interleaved) to outHeight x outWidth. */
    public static float[] resize(float[] src, int height, int width, int channels, int outHeight, int outWidth) {
        if (src.length != height * width * channels) {
            throw new IllegalArgumentException("expected " + height * width * channels + " values, got " + src.length);
        }
        if (height == outHeight && width == outWidth) {
            return src.clone();
        }
        int[] x0 = new int[outWidth];
        int[] x1 = new int[outWidth];
        float[] ax = new float[outWidth];
        double scaleX = 1.0 / ((double) outWidth / width);
        for (int dx = 0; dx < outWidth; dx++) {
            float fx = (float) ((dx + 0.5) * scaleX - 0.5);
            int sx = (int) Math.floor(fx);
            fx -= sx;
            if (sx < 0) {
                sx = 0;
                fx = 0f;
            }
            if (sx >= width - 1) {
                sx = width - 1;
                fx = 0f;
            }
            x0[dx] = sx;
            x1[dx] = Math.min(sx + 1, width - 1);
            ax[dx] = fx;
        }
        // Horizontal pass over every source row.
        float[] rows = new float[height * outWidth * channels];
        for (int y = 0; y < height; y++) {
            int srcRow = y * width * channels;
            int dstRow = y * outWidth * channels;
            for (int dx = 0; dx < outWidth; dx++) {
                float a1 = ax[dx];
                float a0 = 1f - a1;
                for (int c = 0; c < channels; c++) {
                    float s0 = src[srcRow + x0[dx] * channels + c];
                    rows[dstRow + dx * channels + c] = a1 == 0f ? s0 : s0 * a0 + src[srcRow + x1[dx] * channels + c] * a1;
                }
            }
        }
        // Vertical pass.
        float[] out = new float[outHeight * outWidth * channels];
        double scaleY = 1.0 / ((double) outHeight / height);
        int rowLength = outWidth * channels;
        for (int dy = 0; dy < outHeight; dy++) {
            float fy = (float) ((dy + 0.5) * scaleY - 0.5);
            int sy = (int) Math.floor(fy);
            fy -= sy;
            int r0 = clamp(sy, height - 1) * rowLength;
            int r1 = clamp(sy + 1, height - 1) * rowLength;
            float b1 = fy;
            float b0 = 1f - fy;
            int dst = dy * rowLength;
            for (int i = 0; i < rowLength; i++) {
                out[dst + i] = rows[r0 + i] * b0 + rows[r1 + i] * b1;
            }
        }
        return out;
    }

    private static int clamp(int v, int max) {
        return v < 0 ? 0 : (v > max ? max : v);
    }
}
