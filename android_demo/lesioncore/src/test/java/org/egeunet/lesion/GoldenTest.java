package org.egeunet.lesion;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Properties;
import javax.imageio.ImageIO;
import org.junit.Assume;
import org.junit.Test;

/**
 * The lesion core against golden vectors written by {@code egeunet.golden} for freshly exported models.
 *
 * <p>System property {@code golden.cases} names a properties file (written by tests/test_android_core.py)
 * listing one case per photo and artifact: file paths and the artifact's I/O contract. Every measured
 * difference is printed as {@code GOLDEN case metric value} for the Python test to report.
 */
public class GoldenTest {
    private static final float CANONICAL_TOLERANCE = 1e-3f;

    private static Properties cases() throws IOException {
        String file = System.getProperty("golden.cases");
        Assume.assumeTrue("no -Dgolden.cases=FILE: run tests/test_android_core.py", file != null && !file.isEmpty());
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(Paths.get(file))) {
            p.load(in);
        }
        return p;
    }

    private static int[] argb(BufferedImage image) {
        return image.getRGB(0, 0, image.getWidth(), image.getHeight(), null, 0, image.getWidth());
    }

    private static byte[] gray(BufferedImage image) {
        int w = image.getWidth();
        int h = image.getHeight();
        byte[] out = new byte[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                out[y * w + x] = (byte) image.getRaster().getSample(x, y, 0);
            }
        }
        return out;
    }

    private static TensorIO io(Properties p, String key) {
        return new TensorIO(Integer.parseInt(p.getProperty(key + ".size")),
                "NHWC".equals(p.getProperty(key + ".layout")),
                Boolean.parseBoolean(p.getProperty(key + ".baked")),
                dtype(p.getProperty(key + ".input_dtype")),
                Float.parseFloat(p.getProperty(key + ".input_scale", "0")),
                Integer.parseInt(p.getProperty(key + ".input_zero_point", "0")),
                dtype(p.getProperty(key + ".output_dtype")),
                Float.parseFloat(p.getProperty(key + ".output_scale", "0")),
                Integer.parseInt(p.getProperty(key + ".output_zero_point", "0")));
    }

    private static TensorIO.DType dtype(String name) {
        return TensorIO.DType.valueOf(name.toUpperCase());
    }

    private static void report(String key, String metric, double value) {
        System.out.println("GOLDEN " + key + " " + metric + " " + value);
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length);
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs((double) a[i] - b[i]));
        }
        return max;
    }

    /** Values of a packed input tensor as doubles, whatever its element type. */
    private static double[] values(ByteBuffer buffer, TensorIO.DType type) {
        ByteBuffer b = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.rewind();
        double[] out = new double[b.remaining() / (type == TensorIO.DType.FLOAT32 ? 4 : 1)];
        for (int i = 0; i < out.length; i++) {
            out[i] = type == TensorIO.DType.FLOAT32 ? b.getFloat() : type == TensorIO.DType.UINT8 ? b.get() & 0xff : b.get();
        }
        return out;
    }

    @Test
    public void everyCaseMatchesPython() throws IOException {
        Properties p = cases();
        String[] keys = p.getProperty("cases").split(",");
        assertTrue("no golden cases", keys.length > 0 && !keys[0].isEmpty());
        for (String key : keys) {
            checkCase(p, key);
        }
    }

    private void checkCase(Properties p, String key) throws IOException {
        TensorIO io = io(p, key);
        BufferedImage photo = ImageIO.read(Paths.get(p.getProperty(key + ".image")).toFile());
        int h = photo.getHeight();
        int w = photo.getWidth();
        int[] pixels = argb(photo);

        // 1. Preprocessing: the canonical tensor of egeunet.preprocess.
        float[] canonical = Preprocess.canonical(pixels, h, w, io.size);
        double dCanonical = maxAbsDiff(canonical, Npy.read(Paths.get(p.getProperty(key + ".input"))).floats());
        report(key, "canonical_max_abs", dCanonical);
        assertTrue(key + ": canonical tensor differs by " + dCanonical, dCanonical <= CANONICAL_TOLERANCE);

        // 2. Packing: layout, dtype and quantisation of the tensor actually fed to the runtime.
        double[] mine = values(io.input(pixels, h, w), io.inputType);
        double[] golden = values(Npy.read(Paths.get(p.getProperty(key + ".in"))).data, io.inputType);
        assertEquals(key + ": input tensor length", golden.length, mine.length);
        double dPacked = 0;
        int packedMismatches = 0;
        for (int i = 0; i < mine.length; i++) {
            double d = Math.abs(mine[i] - golden[i]);
            dPacked = Math.max(dPacked, d);
            packedMismatches += d > CANONICAL_TOLERANCE ? 1 : 0;
        }
        report(key, "packed_max_abs", dPacked);
        report(key, "packed_mismatches", packedMismatches);
        // Integer tensors may differ by one step where the float value sits on a rounding boundary.
        double packedTolerance = io.inputType == TensorIO.DType.FLOAT32 ? CANONICAL_TOLERANCE : 1;
        assertTrue(key + ": packed input differs by " + dPacked, dPacked <= packedTolerance);
        assertTrue(key + ": " + packedMismatches + " packed values differ", packedMismatches <= mine.length / 10000);

        // 3. Output: raw tensor -> probabilities (dequantised when int8), bit for bit.
        ByteBuffer raw = Npy.read(Paths.get(p.getProperty(key + ".out"))).data;
        float[] prob = io.probabilities(raw);
        double dProb = maxAbsDiff(prob, Npy.read(Paths.get(p.getProperty(key + ".prob"))).floats());
        report(key, "prob_max_abs", dProb);
        assertEquals(key + ": probabilities", 0.0, dProb, 0.0);

        // 4. Mask at the photo's size, through the whole Segmenter with the recorded model output.
        Segmenter segmenter = new Segmenter(io, (input, output) -> output.put(raw.duplicate()));
        Segmenter.Result result = segmenter.segment(pixels, h, w);
        byte[] goldenMask = gray(ImageIO.read(Paths.get(p.getProperty(key + ".mask")).toFile()));
        int maskMismatches = 0;
        for (int i = 0; i < goldenMask.length; i++) {
            maskMismatches += result.mask[i] != goldenMask[i] ? 1 : 0;
        }
        report(key, "mask_mismatches", maskMismatches);
        report(key, "area_fraction", result.areaFraction);
        assertTrue(key + ": " + maskMismatches + " mask pixels differ", maskMismatches <= goldenMask.length / 10000);

        // 5. Overlay: tint exact wherever neither side drew the outline; outlines mostly coincide.
        int[] goldenOverlay = argb(ImageIO.read(Paths.get(p.getProperty(key + ".overlay")).toFile()));
        boolean[] outline = Postprocess.outline(result.mask, h, w, Postprocess.contourWidth(h, w) / 2);
        int tintMismatches = 0;
        int outlineBoth = 0;
        int outlineEither = 0;
        for (int i = 0; i < goldenOverlay.length; i++) {
            boolean theirs = (goldenOverlay[i] & 0xffffff) == Postprocess.CONTOUR_RGB;
            if (outline[i] || theirs) {
                outlineEither++;
                outlineBoth += outline[i] && theirs ? 1 : 0;
            } else if ((result.overlay[i] & 0xffffff) != (goldenOverlay[i] & 0xffffff)) {
                tintMismatches++;
            }
        }
        double outlineIou = outlineEither == 0 ? 1 : (double) outlineBoth / outlineEither;
        report(key, "overlay_tint_mismatches", tintMismatches);
        report(key, "overlay_outline_iou", outlineIou);
        assertTrue(key + ": " + tintMismatches + " tinted pixels differ", tintMismatches <= maskMismatches);
        assertTrue(key + ": outline overlap " + outlineIou, outlineIou >= 0.3);
    }

    @Test
    public void constantImageStretchesToZero() {
        int[] grey = new int[5 * 7];
        java.util.Arrays.fill(grey, 0xff808080);
        for (float v : Preprocess.canonical(grey, 5, 7, 32)) {
            assertEquals(0f, v, 0f);
        }
    }

    @Test
    public void packsChannelsFirstAndChannelsLast() {
        float[] chw = {1f, 2f, 3f, 4f, 10f, 20f, 30f, 40f, 100f, 200f, 300f, 400f}; // 3 x 2 x 2
        float[] nchw = new float[12];
        float[] nhwc = new float[12];
        TensorIO.float32(2, false).pack(chw).asFloatBuffer().get(nchw);
        TensorIO.float32(2, true).pack(chw).asFloatBuffer().get(nhwc);
        assertEquals(java.util.Arrays.toString(chw), java.util.Arrays.toString(nchw));
        assertEquals("[1.0, 10.0, 100.0, 2.0, 20.0, 200.0, 3.0, 30.0, 300.0, 4.0, 40.0, 400.0]", java.util.Arrays.toString(nhwc));
    }

    @Test
    public void int8QuantisationRoundsHalfToEvenAndSaturates() {
        TensorIO io = new TensorIO(1, true, false, TensorIO.DType.INT8, 2f, -128, TensorIO.DType.INT8, 1f / 256, -128);
        byte[] packed = new byte[3];
        io.pack(new float[] {1f, 3f, 1000f}).get(packed);
        assertEquals(-128, packed[0]); // rint(0.5) = 0
        assertEquals(-126, packed[1]); // rint(1.5) = 2
        assertEquals(127, packed[2]); // saturated
        ByteBuffer out = ByteBuffer.wrap(new byte[] {0});
        assertEquals(0.5f, io.probabilities(out)[0], 0f);
    }
}
