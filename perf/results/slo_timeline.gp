# Written by perf/harness/harness.py
set terminal pngcairo size 1100,600 noenhanced font ',10'
set output 'slo_timeline.png'
set title 'SLO run: on-sale, open loop at 100,000 requests/s'
set grid lc rgb '#dddddd'
set xlabel 'time (s)'
set ylabel 'requests/s'
set y2label 'p99 (ms)'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set format y '%.0s%c'
set key outside right top
set datafile missing 'nan'
plot 'slo_timeline.dat' using 1:2 axes x1y1 with lines lw 2 lc 1 title 'throughput', \
     'slo_timeline.dat' using 1:3 axes x1y2 with lines lw 2 lc 7 title 'p99'
