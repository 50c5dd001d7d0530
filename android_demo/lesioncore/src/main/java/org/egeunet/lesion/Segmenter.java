package org.egeunet.lesion;

import java.nio.ByteBuffer;

/**
 * One photo through one exported model: pack the input, run, read the probabilities, build the
 * mask at the photo's size, its area fraction and the overlay. The runtime is plugged in as a
 * {@link ModelRunner} (LiteRT's Interpreter on Android, recorded outputs in the tests).
 */
public final class Segmenter {
    /** Runs the model: reads {@code input}, writes the raw output tensor into {@code output}. */
    public interface ModelRunner {
        void run(ByteBuffer input, ByteBuffer output);
    }

    /** What the app shows for one photo. */
    public static final class Result {
        public final float[] probabilities;
        public final byte[] mask;
        public final int[] overlay;
        public final double areaFraction;
        public final double inferenceMillis;

        Result(float[] probabilities, byte[] mask, int[] overlay, double areaFraction, double inferenceMillis) {
            this.probabilities = probabilities;
            this.mask = mask;
            this.overlay = overlay;
            this.areaFraction = areaFraction;
            this.inferenceMillis = inferenceMillis;
        }
    }

    public static final float THRESHOLD = 0.5f;

    private final TensorIO io;
    private final ModelRunner runner;

    public Segmenter(TensorIO io, ModelRunner runner) {
        this.io = io;
        this.runner = runner;
    }

    /** Segment one photo given as ARGB pixels, height x width. */
    public Result segment(int[] argb, int height, int width) {
        ByteBuffer input = io.input(argb, height, width);
        ByteBuffer output = io.newOutputBuffer();
        long start = System.nanoTime();
        runner.run(input, output);
        double millis = (System.nanoTime() - start) / 1e6;
        float[] prob = io.probabilities(output);
        byte[] mask = Postprocess.maskAtSize(prob, io.size, height, width, THRESHOLD);
        return new Result(prob, mask, Postprocess.overlay(argb, mask, height, width), Postprocess.areaFraction(mask), millis);
    }
}
