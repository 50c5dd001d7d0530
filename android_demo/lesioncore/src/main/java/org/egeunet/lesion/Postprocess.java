package org.egeunet.lesion;

/**
 * egeunet's post-processing ({@code egeunet predict}): the S x S probability map resized bilinearly to the
 * photo's size and thresholded to a 0/255 mask; the overlay tints lesion pixels and outlines the lesion.
 *
 * <p>The mask and the tint are exactly Python's; the outline is drawn as the mask's boundary pixels
 * widened to predict's line width, which approximates (not reproduces) OpenCV's drawContours.
 */
public final class Postprocess {
    /** Lesion tint (RGB), its opacity, and the outline colour, as in {@code egeunet/commands/predict.py}. */
    static final float[] TINT = {255f, 40f, 40f};
    static final double TINT_ALPHA = 0.35;
    static final int CONTOUR_RGB = (255 << 16) | (230 << 8);

    private Postprocess() {}

    /** Probabilities size x size -> mask height x width, 255 where the resized probability >= threshold. */
    public static byte[] maskAtSize(float[] prob, int size, int height, int width, float threshold) {
        float[] full = Bilinear.resize(prob, size, size, 1, height, width);
        byte[] mask = new byte[full.length];
        for (int i = 0; i < full.length; i++) {
            mask[i] = full[i] >= threshold ? (byte) 255 : 0;
        }
        return mask;
    }

    /** Share of mask pixels that are lesion. */
    public static double areaFraction(byte[] mask) {
        long n = 0;
        for (byte m : mask) {
            if (m != 0) {
                n++;
            }
        }
        return mask.length == 0 ? 0 : (double) n / mask.length;
    }

    /** Outline width predict.py uses: max(1, round(max(height, width) / 300)), rounding half to even. */
    static int contourWidth(int height, int width) {
        return Math.max(1, (int) Math.rint(Math.max(height, width) / 300.0));
    }

    /** ARGB photo with the lesion tinted and outlined (returns a new array; alpha is kept). */
    public static int[] overlay(int[] argb, byte[] mask, int height, int width) {
        float keep = (float) (1 - TINT_ALPHA);
        float alpha = (float) TINT_ALPHA;
        int[] out = argb.clone();
        for (int i = 0; i < out.length; i++) {
            if (mask[i] == 0) {
                continue;
            }
            int p = argb[i];
            int rgb = 0;
            for (int c = 0; c < 3; c++) {
                float v = (p >> (16 - 8 * c)) & 0xff;
                int t = (int) Math.rint(keep * v + alpha * TINT[c]);
                rgb |= t << (16 - 8 * c);
            }
            out[i] = (p & 0xff000000) | rgb;
        }
        boolean[] outline = outline(mask, height, width, contourWidth(height, width) / 2);
        for (int i = 0; i < out.length; i++) {
            if (outline[i]) {
                out[i] = (out[i] & 0xff000000) | CONTOUR_RGB;
            }
        }
        return out;
    }

    /** Boundary pixels of the mask (lesion pixels touching background or the image edge), widened by radius. */
    static boolean[] outline(byte[] mask, int height, int width, int radius) {
        boolean[] edge = new boolean[mask.length];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int i = y * width + x;
                edge[i] = mask[i] != 0 && (x == 0 || y == 0 || x == width - 1 || y == height - 1
                        || mask[i - 1] == 0 || mask[i + 1] == 0 || mask[i - width] == 0 || mask[i + width] == 0);
            }
        }
        if (radius == 0) {
            return edge;
        }
        boolean[] wide = new boolean[mask.length];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                if (!edge[y * width + x]) {
                    continue;
                }
                for (int yy = Math.max(0, y - radius); yy <= Math.min(height - 1, y + radius); yy++) {
                    for (int xx = Math.max(0, x - radius); xx <= Math.min(width - 1, x + radius); xx++) {
                        wide[yy * width + xx] = true;
                    }
                }
            }
        }
        return wide;
    }
}
