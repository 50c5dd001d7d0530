package org.egeunet.lesion;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * How one exported artifact takes its input and gives its output (egeunet's artifact contract):
 * layout (NCHW or NHWC), baked preprocessing (uint8 pixels in, the graph stretches), and int8 I/O with
 * the tensors' own scale and zero point. Mirrors {@code egeunet.export.io.ArtifactIO}.
 *
 * <p>Quantisation is {@code clamp(rint(x / scale) + zeroPoint, -128, 127)} (round half to even),
 * dequantisation {@code (q - zeroPoint) * scale}, both in float32.
 */
public final class TensorIO {
    /** Element type of an input or output tensor. */
    public enum DType { FLOAT32, INT8, UINT8 }

    public final int size;
    public final boolean nhwc;
    public final boolean baked;
    public final DType inputType;
    public final float inputScale;
    public final int inputZeroPoint;
    public final DType outputType;
    public final float outputScale;
    public final int outputZeroPoint;

    public TensorIO(int size, boolean nhwc, boolean baked, DType inputType, float inputScale, int inputZeroPoint,
                    DType outputType, float outputScale, int outputZeroPoint) {
        if (baked && inputType == DType.INT8) {
            throw new IllegalArgumentException("a baked-preprocessing model takes uint8 (or float32) pixels, not int8");
        }
        this.size = size;
        this.nhwc = nhwc;
        this.baked = baked;
        this.inputType = inputType;
        this.inputScale = inputScale;
        this.inputZeroPoint = inputZeroPoint;
        this.outputType = outputType;
        this.outputScale = outputScale;
        this.outputZeroPoint = outputZeroPoint;
    }

    /** A float32-in, float32-out artifact. */
    public static TensorIO float32(int size, boolean nhwc) {
        return new TensorIO(size, nhwc, false, DType.FLOAT32, 0f, 0, DType.FLOAT32, 0f, 0);
    }

    private static int bytesPer(DType type) {
        return type == DType.FLOAT32 ? 4 : 1;
    }

    /** A direct, little-endian buffer large enough for the output tensor (what the interpreter writes). */
    public ByteBuffer newOutputBuffer() {
        return ByteBuffer.allocateDirect(size * size * bytesPer(outputType)).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The photo (ARGB pixels) as this artifact's input tensor, ready for the interpreter. */
    public ByteBuffer input(int[] argb, int height, int width) {
        float[] chw = baked ? pixels(Preprocess.resized(argb, height, width, size)) : Preprocess.canonical(argb, height, width, size);
        return pack(chw);
    }

    /** Canonical 3 x S x S values (stretched floats, or pixel values when baked) -> the input tensor. */
    public ByteBuffer pack(float[] chw) {
        int plane = size * size;
        ByteBuffer buffer = ByteBuffer.allocateDirect(3 * plane * bytesPer(inputType)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 3 * plane; i++) {
            // i walks the tensor in its own layout; (c, p) is the channel and pixel it holds.
            int c = nhwc ? i % 3 : i / plane;
            int p = nhwc ? i / 3 : i % plane;
            float v = chw[c * plane + p];
            switch (inputType) {
                case FLOAT32:
                    buffer.putFloat(v);
                    break;
                case UINT8:
                    buffer.put((byte) v);
                    break;
                default:
                    buffer.put((byte) clamp((int) Math.rint(v / inputScale) + inputZeroPoint, -128, 127));
            }
        }
        buffer.rewind();
        return buffer;
    }

    /** The output tensor (1 x S x S x 1 or 1 x 1 x S x S: the same order) -> probabilities S x S. */
    public float[] probabilities(ByteBuffer output) {
        ByteBuffer b = output.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.rewind();
        float[] prob = new float[size * size];
        for (int i = 0; i < prob.length; i++) {
            switch (outputType) {
                case FLOAT32:
                    prob[i] = b.getFloat();
                    break;
                case UINT8:
                    prob[i] = ((b.get() & 0xff) - outputZeroPoint) * outputScale;
                    break;
                default:
                    prob[i] = (b.get() - outputZeroPoint) * outputScale;
            }
        }
        return prob;
    }

    /** Resized RGB (S x S x 3 interleaved floats) -> rounded uint8 pixel values as 3 x S x S floats. */
    private float[] pixels(float[] hwc) {
        int plane = size * size;
        float[] chw = new float[3 * plane];
        for (int i = 0; i < plane; i++) {
            for (int c = 0; c < 3; c++) {
                chw[c * plane + i] = clamp((int) Math.rint(hwc[3 * i + c]), 0, 255);
            }
        }
        return chw;
    }

    private static int clamp(int v, int lo, int hi) {
        return v < lo ? lo : (v > hi ? hi : v);
    }
}
