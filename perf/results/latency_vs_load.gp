# Written by perf/harness/harness.py
set terminal pngcairo size 1100,760 noenhanced font ',10'
set output 'latency_vs_load.png'
set title "Latency against offered load, open loop, on-sale\np99 solid, p50 dotted in the same colour"
set logscale xy
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set xlabel 'offered load (requests/s)'
set ylabel 'latency (ms)'
set format x '%.0s%c'
set key below maxrows 3
set datafile missing 'nan'
plot 'latency_vs_load.dat' index 0 using 1:5 with linespoints lw 2 pt 7 lc 1 dt 1 title 'boxoffice (32 conns x 64)', 'latency_vs_load.dat' index 0 using 1:3 with linespoints lw 1 pt 6 lc 1 dt 3 notitle, 'latency_vs_load.dat' index 1 using 1:5 with linespoints lw 2 pt 7 lc 2 dt 1 title 'boxoffice_single_frame (32 conns x 1)', 'latency_vs_load.dat' index 1 using 1:3 with linespoints lw 1 pt 6 lc 2 dt 3 notitle, 'latency_vs_load.dat' index 2 using 1:5 with linespoints lw 2 pt 7 lc 3 dt 1 title 'redis_always_pipelined (32 conns x 16)', 'latency_vs_load.dat' index 2 using 1:3 with linespoints lw 1 pt 6 lc 3 dt 3 notitle, 'latency_vs_load.dat' index 3 using 1:5 with linespoints lw 2 pt 7 lc 4 dt 1 title 'redis_everysec_pipelined (32 conns x 16)', 'latency_vs_load.dat' index 3 using 1:3 with linespoints lw 1 pt 6 lc 4 dt 3 notitle, 'latency_vs_load.dat' index 4 using 1:5 with linespoints lw 2 pt 7 lc 5 dt 1 title 'postgres_pipelined (16 conns x 16)', 'latency_vs_load.dat' index 4 using 1:3 with linespoints lw 1 pt 6 lc 5 dt 3 notitle, 'latency_vs_load.dat' index 5 using 1:5 with linespoints lw 2 pt 7 lc 6 dt 1 title 'nng_echo (32 conns x 1)', 'latency_vs_load.dat' index 5 using 1:3 with linespoints lw 1 pt 6 lc 6 dt 3 notitle
