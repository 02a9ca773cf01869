package lowbit.calibrate;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * Renders a calibration loss-curve CSV ({@code block,epoch,step,loss}, as {@link CalibrationBench}
 * writes it) to a PNG with XChart: per block, the loss of every optimizer step (thin line) and the
 * mean of each epoch (line with markers, at the epoch's middle step). Headless: sets {@code
 * java.awt.headless=true} unless the JVM was started with a value for it.
 *
 * <pre>
 *   java -cp ... lowbit.calibrate.LossCurvePlot LOSS_CURVE.csv OUT.png [TITLE]
 * </pre>
 */
public final class LossCurvePlot {
    private static final Color[] PALETTE = {
        new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c), new Color(0x9467bd), new Color(0xff7f0e), new Color(0x8c564b), new Color(0xe377c2),
        new Color(0x17becf)
    };

    static {
        // before any AWT graphics initialise: render without a display (servers, CI, the GPU host)
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
    }

    private LossCurvePlot() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: LossCurvePlot LOSS_CURVE.csv OUT.png [TITLE]");
            System.exit(2);
        }
        write(Path.of(args[0]), Path.of(args[1]), args.length == 3 ? args[2] : "Calibration loss per step");
        System.out.println("wrote " + args[1]);
    }

    /**
     * Reads {@code csv} and writes the chart to {@code png} (rendered into a temporary file beside it,
     * then moved over it, so a failed render never leaves a truncated PNG). A JVM whose graphics or
     * font libraries cannot load (a bare server image) gives an IOException saying so.
     */
    public static void write(Path csv, Path png, String title) throws IOException {
        TreeMap<Integer, List<double[]>> blocks = read(csv);
        Path dir = png.toAbsolutePath().getParent();
        Path tmp = Files.createTempFile(dir, ".loss-curve", ".png.tmp");
        try {
            render(blocks, title, tmp);
            Files.move(tmp, png, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (LinkageError e) {
            throw new IOException("cannot render " + png + ": this JVM's graphics/font libraries do not load here (" + e.getMessage() + ")", e);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void render(TreeMap<Integer, List<double[]>> blocks, String title, Path png) throws IOException {
        XYChart chart = new XYChartBuilder().width(1000).height(560).title(title).xAxisTitle("optimizer step within the block").yAxisTitle("loss").build();
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
        chart.getStyler().setYAxisDecimalPattern("0.000");
        int b = 0;
        for (var e : blocks.entrySet()) {
            Color color = PALETTE[b++ % PALETTE.length];
            List<double[]> rows = e.getValue(); // {epoch, step, loss}
            double[] steps = rows.stream().mapToDouble(r -> r[1]).toArray();
            double[] losses = rows.stream().mapToDouble(r -> r[2]).toArray();
            XYSeries perStep = chart.addSeries("block " + e.getKey() + " step", steps, losses);
            perStep.setMarker(SeriesMarkers.NONE);
            perStep.setLineColor(new Color(color.getRed(), color.getGreen(), color.getBlue(), 110));
            perStep.setLineStyle(new BasicStroke(1f));
            double[][] means = epochMeans(rows);
            XYSeries perEpoch = chart.addSeries("block " + e.getKey() + " epoch mean", means[0], means[1]);
            perEpoch.setMarker(SeriesMarkers.CIRCLE);
            perEpoch.setMarkerColor(color);
            perEpoch.setLineColor(color);
            perEpoch.setLineStyle(new BasicStroke(2.2f));
        }
        try (OutputStream out = Files.newOutputStream(png)) {
            BitmapEncoder.saveBitmap(chart, out, BitmapEncoder.BitmapFormat.PNG);
        }
    }

    /** Rows {@code {epoch, step, loss}} per block, in file order; a clear exception for any malformed line. */
    static TreeMap<Integer, List<double[]>> read(Path csv) throws IOException {
        List<String> lines = Files.readAllLines(csv);
        if (lines.isEmpty() || !lines.get(0).trim().equals("block,epoch,step,loss")) {
            throw new IllegalArgumentException(csv + ": expected the header 'block,epoch,step,loss'");
        }
        TreeMap<Integer, List<double[]>> blocks = new TreeMap<>();
        for (int i = 1; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty()) continue;
            String[] f = line.split(",");
            try {
                if (f.length != 4) throw new NumberFormatException("4 fields expected, found " + f.length);
                double loss = Double.parseDouble(f[3]);
                if (!Double.isFinite(loss)) throw new NumberFormatException("loss is " + loss);
                blocks.computeIfAbsent(Integer.parseInt(f[0]), k -> new ArrayList<>())
                        .add(new double[] {Integer.parseInt(f[1]), Integer.parseInt(f[2]), loss});
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(String.format(Locale.ROOT, "%s line %d '%s': %s", csv, i + 1, line, e.getMessage()), e);
            }
        }
        if (blocks.isEmpty()) throw new IllegalArgumentException(csv + ": no loss rows");
        return blocks;
    }

    /** {x: middle step of each epoch, y: mean loss of the epoch}, epochs in order of appearance. */
    static double[][] epochMeans(List<double[]> rows) {
        TreeMap<Integer, double[]> sums = new TreeMap<>(); // epoch -> {Σ step, Σ loss, count}
        for (double[] r : rows) {
            double[] s = sums.computeIfAbsent((int) r[0], k -> new double[3]);
            s[0] += r[1];
            s[1] += r[2];
            s[2]++;
        }
        double[][] out = new double[2][sums.size()];
        int i = 0;
        for (double[] s : sums.values()) {
            out[0][i] = s[0] / s[2];
            out[1][i++] = s[1] / s[2];
        }
        return out;
    }
}
