-- phpMyAdmin SQL Dump
-- version 5.2.1
-- https://www.phpmyadmin.net/
--
-- Host: localhost
-- Generation Time: Mar 14, 2025 at 10:12 AM
-- Server version: 10.11.6-MariaDB-0+deb12u1
-- PHP Version: 8.2.26

SET SQL_MODE = "NO_AUTO_VALUE_ON_ZERO";
START TRANSACTION;
SET time_zone = "+00:00";


/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8mb4 */;

--
-- Database: `yourls`
--

-- --------------------------------------------------------

--
-- Table structure for table `yourls_url`
--

CREATE TABLE `yourls_url` (
  `keyword` varchar(100) NOT NULL DEFAULT '',
  `url` text NOT NULL,
  `title` text CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci DEFAULT NULL,
  `timestamp` timestamp NOT NULL DEFAULT current_timestamp(),
  `ip` varchar(41) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  `clicks` int(10) UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

--
-- Dumping data for table `yourls_url`
--

INSERT INTO `yourls_url` (`keyword`, `url`, `title`, `timestamp`, `ip`, `clicks`) VALUES
('2b', 'https://example.net/report.pdf', NULL, '2023-01-05 00:00:00', '2001:db8::42', 0),
('Multi', 'https://example.com/a,b;c', 'line one\nline two	with tab', '2025-01-01 00:00:01', '10.0.0.1', 4294967295),
('cafe', 'https://example.jp/%E6%9D%B1%E4%BA%AC/cafe', 'Café ☕ – 東京のカフェ 🍰', '2024-02-29 12:00:00', '192.0.2.1', 7),
('empty', 'https://example.com/no-title', '', '2024-07-04 04:04:04', '192.0.2.1', 0),
('ozh', 'https://ozh.org/', 'ozh.org', '2021-03-02 09:14:07', '127.0.0.1', 3),
('quote', 'https://example.org/blog/o\'reilly-interview', 'He said \"ship it\" \\o/ — an O\'Reilly interview', '2023-06-30 23:59:59', '198.51.100.7', 42),
('shoes', 'https://shop.example.com/search?q=running+shoes&size=42&utm_source=newsletter&utm_medium=email', 'Running Shoes, Boots & More | Example Store', '2022-11-25 18:03:41', '203.0.113.9', 1284),
('yourls', 'https://yourls.org/', 'YOURLS: Your Own URL Shortener', '2021-03-02 09:14:07', '127.0.0.1', 17),
('yourlsblog', 'https://blog.yourls.org/', 'YOURLS\' Blog', '2021-03-02 09:14:07', '127.0.0.1', 0);

--
-- Indexes for dumped tables
--

--
-- Indexes for table `yourls_url`
--
ALTER TABLE `yourls_url`
  ADD PRIMARY KEY (`keyword`),
  ADD KEY `ip` (`ip`),
  ADD KEY `timestamp` (`timestamp`),
  ADD KEY `url_idx` (`url`(30));
COMMIT;

/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
