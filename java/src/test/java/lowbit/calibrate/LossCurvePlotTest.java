package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The loss-curve PNG: rendered headless from a CSV, epoch means computed right, bad CSVs refused with the line. */
class LossCurvePlotTest {
    @TempDir
    Path dir;

    @Test
    void rendersAPngWithBothBlocksCurves() throws IOException {
        Path csv = dir.resolve("loss-curve.csv"), png = dir.resolve("loss-curve.png");
        StringBuilder s = new StringBuilder("block,epoch,step,loss\n");
        for (int block = 0; block < 2; block++) {
            for (int step = 0; step < 12; step++) s.append(block).append(',').append(step / 4).append(',').append(step).append(',').append(0.1 - 0.002 * step + 0.03 * block).append('\n');
        }
        Files.writeString(csv, s);
        try {
            LossCurvePlot.write(csv, png, "test");
        } catch (IOException e) {
            // a server JVM without font libraries (the GPU host's jlink image) cannot draw text: say so, do not pass silently
            org.junit.jupiter.api.Assumptions.assumeTrue(!(e.getCause() instanceof LinkageError), "cannot render here: " + e.getMessage());
            throw e;
        }
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(1000, img.getWidth());
        assertEquals(560, img.getHeight());
        // the two blocks' epoch-mean lines are drawn in the first two palette colours
        assertTrue(count(img, 0x1f77b4) > 50, "block 0 curve missing");
        assertTrue(count(img, 0xd62728) > 50, "block 1 curve missing");
    }

    @Test
    void epochMeansSitAtTheMiddleStep() {
        double[][] m = LossCurvePlot.epochMeans(List.of(new double[] {0, 0, 1}, new double[] {0, 1, 3}, new double[] {1, 2, 5}, new double[] {1, 3, 9}, new double[] {1, 4, 10}));
        assertArrayEquals(new double[] {0.5, 3}, m[0], 1e-12);
        assertArrayEquals(new double[] {2, 8}, m[1], 1e-12);
    }

    @Test
    void refusesMalformedCsv() throws IOException {
        Path csv = dir.resolve("bad.csv");
        Files.writeString(csv, "block,epoch,step,loss\n0,0,0,0.1\n0,0,1\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LossCurvePlot.write(csv, dir.resolve("x.png"), "t"));
        assertTrue(e.getMessage().contains("line 3"), e.getMessage());
        Files.writeString(csv, "step,loss\n0,0.1\n");
        assertThrows(IllegalArgumentException.class, () -> LossCurvePlot.write(csv, dir.resolve("x.png"), "t"));
        Files.writeString(csv, "block,epoch,step,loss\n0,0,0,NaN\n");
        assertThrows(IllegalArgumentException.class, () -> LossCurvePlot.write(csv, dir.resolve("x.png"), "t"));
        Files.writeString(csv, "block,epoch,step,loss\n");
        assertThrows(IllegalArgumentException.class, () -> LossCurvePlot.write(csv, dir.resolve("x.png"), "t"));
    }

    private static int count(BufferedImage img, int rgb) {
        int n = 0;
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) n += (img.getRGB(x, y) & 0xffffff) == rgb ? 1 : 0;
        }
        return n;
    }
}
